"""The stack's services: N runner services, and `down` stops every one it recorded."""

import subprocess

from retainwise.config.settings import Settings
from retainwise.local import stack


def test_runners_setting_gives_that_many_runner_services_sharing_the_cores():
    assert [s.name for s in stack.runner_services(Settings(runners=1))] == ["runner"]
    two = stack.runner_services(Settings(runners=2))
    assert [s.name for s in two] == ["runner-1", "runner-2"]
    assert all(s.argv[-2:] == ["--processes", two[0].argv[-1]] for s in two)


def test_down_stops_runners_started_with_another_runner_count(tmp_path):
    settings = Settings(home=tmp_path, runners=1)
    (tmp_path / "pids").mkdir()
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    (tmp_path / "pids" / "runner-2.pid").write_text(str(leftover.pid))
    assert stack.down(settings) == ["runner-2"]
    assert leftover.wait(10) is not None
    assert not (tmp_path / "pids" / "runner-2.pid").exists()
