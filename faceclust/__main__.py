from faceclust.cli import run

run()
