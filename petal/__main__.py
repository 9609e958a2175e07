from petal.cli.main import run

run()
