from kronk.cli.main import main

main()
