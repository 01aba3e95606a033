"""The supervisor's decisions as pure functions: no I/O, no clock reads (time is passed in), stdlib
only. The supervisor gathers what they need, calls them, and carries out what they return.

- :mod:`.backoff`: the delay before a restart after quick deaths;
- :mod:`.start_gate`: which dependencies a daemon still waits for, and who may start now;
- :mod:`.reload`: what a new set of declarations means for the running set;
- :mod:`.stop_order`: the final stop's order (dependents before what they depend on).
"""
