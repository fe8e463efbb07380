__version__ = "0.2.0"  # the one place: setup.py and `chatd --version` read it
