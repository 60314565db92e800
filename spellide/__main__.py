import sys

from spellide.spell.cli import main

sys.exit(main())
