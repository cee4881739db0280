from evo1cli.commands import main

main()
