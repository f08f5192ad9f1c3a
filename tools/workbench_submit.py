"""spark-submit entry point for the ``workbench`` command line.

    spark-submit --master spark://host:7077 tools/workbench_submit.py train lenet5 --epochs 15

runs ``workbench train ...`` on the session spark-submit configured (``--master submit`` is
added unless a ``--master`` is given)."""
import sys

from workbench.cli import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["train"] and "--master" not in argv:
        argv += ["--master", "submit"]
    sys.exit(main(argv))
