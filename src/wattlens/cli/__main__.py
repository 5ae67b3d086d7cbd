"""python -m wattlens.cli"""

from wattlens.cli import main

main()
