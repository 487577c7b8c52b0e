"""A long job's console (raylib.logs.quiet_console), in a real process: its own lines and warnings reach
the terminal; library INFO lines and what native code writes to file descriptor 2 (Ray's C++ core
worker prints its error lines there) go to the log file only."""

import subprocess
import sys
import textwrap


def test_console_keeps_own_lines_and_the_log_file_takes_native_stderr(tmp_path, repo_root):
    log = tmp_path / "logs" / "job.log"
    code = textwrap.dedent(f"""
        import logging, os
        from raylib.logs import quiet_console
        quiet_console({str(log)!r}, "job")
        logging.getLogger("job").info("stage done")
        logging.getLogger("ray.data").info("ray data chatter")
        logging.getLogger("other").warning("a warning")
        os.write(2, b"[core_worker.cc:1] native error line\\n")
        import sys; print("plain stderr", file=sys.stderr)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "stage done" in proc.stderr and "a warning" in proc.stderr and "plain stderr" in proc.stderr
    assert "ray data chatter" not in proc.stderr and "native error line" not in proc.stderr
    text = log.read_text()
    assert "native error line" in text and "ray data chatter" in text and "stage done" in text
