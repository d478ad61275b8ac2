from faceclust.cli import main

main()
