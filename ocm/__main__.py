from ocm.cli import run

run()
