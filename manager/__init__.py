"""ocm-manager: the shared server that holds the repos and the one OpenCode server."""
