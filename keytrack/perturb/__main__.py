"""``python -m keytrack.perturb`` (the same as ``keytrack perturb``)."""

import argparse
import sys

from keytrack.perturb.cli import add_arguments, run

parser = argparse.ArgumentParser(prog="python -m keytrack.perturb", description=add_arguments.__doc__)
add_arguments(parser)
sys.exit(run(parser.parse_args()))
