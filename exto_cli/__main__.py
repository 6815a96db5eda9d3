from exto_cli.main import run

run()
