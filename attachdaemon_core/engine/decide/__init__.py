"""The supervisor's decisions as pure functions: no I/O, no clock reads (time is passed in), stdlib
only. The supervisor gathers what they need, calls them, and carries out what they return.

- :mod:`.backoff`: the delay before a restart after quick deaths;
- :mod:`.start_gate`: who is offered a start now;
- :mod:`.conditions`: ``depends_on``'s conditions (which dependencies a daemon still waits for,
  and why), and which dependents follow a dependency declared with ``restart = true``;
- :mod:`.reload`: what a new set of declarations means for the running set;
- :mod:`.stop_order`: the final stop's order (dependents before what they depend on).
"""
