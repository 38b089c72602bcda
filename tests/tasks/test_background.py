"""Work after a run: at once in an ordinary process, on one background thread in a warm child."""

import threading


def test_without_a_background_thread_the_work_is_done_before_after_run_returns():
    from tasks.background import after_run

    ran_on = []
    after_run(lambda: ran_on.append(threading.current_thread()))
    assert ran_on == [threading.current_thread()]


def test_in_background_the_caller_goes_on_and_leaving_waits_for_the_work():
    from tasks.background import after_run, in_background

    release, ran_on, order = threading.Event(), [], []
    with in_background():
        after_run(lambda: release.wait(5) and ran_on.append(threading.current_thread()))
        after_run(lambda: order.append("second"))
        assert ran_on == []  # the caller did not wait for the first piece
        release.set()
    assert ran_on and ran_on[0] is not threading.current_thread()
    assert order == ["second"]  # done, in order, by the time the block ended


def test_a_failing_piece_does_not_stop_the_next(caplog):
    from tasks.background import after_run, in_background

    done = []
    with in_background():
        after_run(lambda: 1 / 0)
        after_run(lambda: done.append(1))
    assert done == [1]
    assert "work after a run failed" in caplog.text
