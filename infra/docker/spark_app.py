"""Entry file for ``spark-submit``: runs the ``tickflow`` command with the arguments after this file.

``spark-submit [options] /opt/tickflow/spark_app.py stream bars`` is ``tickflow stream bars`` in a driver
that spark-submit launched, so its ``--master``, ``--packages`` and ``--conf`` options apply. A separate
file (not ``tickflow/__main__.py``) because Python puts the script's folder first on ``sys.path``.
"""

import runpy

runpy.run_module("tickflow", run_name="__main__", alter_sys=True)
