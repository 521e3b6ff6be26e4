"""`python -m swarm` is the `swarm` command."""

from swarm.cli import main

if __name__ == "__main__":
    main()
