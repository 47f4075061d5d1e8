import os
import sys

# tests/servers.py is shared by every test folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
