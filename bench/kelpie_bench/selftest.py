"""`--self-test`: the tests of the helpers (kelpie_bench/tests), no build, no managers."""

from __future__ import annotations

import unittest

from .tests.test_chaos import ParseOutput as ChaosTest
from .tests.test_check import CheckTest
from .tests.test_cluster import ClusterTest
from .tests.test_deploy import DeployTest
from .tests.test_health import HealthTest
from .tests.test_layout import LayoutTest
from .tests.test_logs import LogCounterTest
from .tests.test_logs_slow import SlowLogFileTest
from .tests.test_node_metrics import NodeMetricsTest
from .tests.test_reliability import ReliabilityTest
from .tests.test_report import ReportTest
from .tests.test_runtime import RuntimeTest
from .tests.test_scale import ScaleTest
from .tests.test_soak import SoakTest
from .tests.test_sockets import SocketsTest


def self_test() -> int:
    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite([loader.loadTestsFromTestCase(LogCounterTest),
                                loader.loadTestsFromTestCase(SlowLogFileTest),
                                loader.loadTestsFromTestCase(ClusterTest),
                                loader.loadTestsFromTestCase(HealthTest),
                                loader.loadTestsFromTestCase(RuntimeTest),
                                loader.loadTestsFromTestCase(ScaleTest),
                                loader.loadTestsFromTestCase(SoakTest),
                                loader.loadTestsFromTestCase(ReliabilityTest),
                                loader.loadTestsFromTestCase(DeployTest),
                                loader.loadTestsFromTestCase(CheckTest),
                                loader.loadTestsFromTestCase(LayoutTest),
                                loader.loadTestsFromTestCase(ReportTest),
                                loader.loadTestsFromTestCase(NodeMetricsTest),
                                loader.loadTestsFromTestCase(ChaosTest),
                                loader.loadTestsFromTestCase(SocketsTest)])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    return 0 if result.wasSuccessful() else 1
