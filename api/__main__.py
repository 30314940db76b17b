from api.entry import main

main()
