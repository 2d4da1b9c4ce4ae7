"""The simulated fleet behind tools/fleet.py (the command line), one module a concern.

    model         what a fleet is: names, ports and paths of a prefix; errors, output
    containers    Docker: the engine and base image, the systemd options, containers, the network
    ssh           the fleet's key pair, the devices' host keys, known_hosts, how Ansible connects
    devices       a device's container, prepared as a fresh Pi, with its identity
    voice_server  the stand-in Javia voice server (tools/fakes/voice_server.py) in a container
    relay         the container that forwards the fleet's network to the registry gateway
    seeding       the fleet's rows in the registry (through the collection's registry client)
    inventory     the fleet's inventory: production's settings plus how to reach a device
    commands      up, down and status, put together from the above

The shell scripts, the relay and the unit that run inside the containers are in files/. The
registry stack's own helpers (tools/stack.py: run, wait_until, atomic_write, read_env_file) are
used, not repeated; tools/ is on sys.path (tools/fleet.py is a script, tests/conftest.py adds it).
"""
