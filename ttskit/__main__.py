from ttskit.cli import main

main()
