"""The ``dehazekit`` command line. Each command module imports heavy packages inside its functions."""
