from sb3_elmur.zoo.registration import main

main()
