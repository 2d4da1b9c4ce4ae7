"""Stand-ins for what the voice client talks to: the Javia voice server, a sound card, mock pins.

The voice client's tests (tests/voice_client), its benchmark (benchmarks/bench_client.py) and the
simulated fleet (tools/fleet.py runs voice_server.py in a container) share them; they live here,
not in tests/, because nothing outside tests/ may import from tests/.
"""
