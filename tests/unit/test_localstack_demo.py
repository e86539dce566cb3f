"""What the demo reports once it is done."""

import os

from publipost_localstack.demo import captured_since


def test_the_demo_counts_only_the_e_mails_of_its_own_run(tmp_path):
    earlier = tmp_path / "1-000001.eml"
    earlier.write_text("Subject: an earlier run\n")
    os.utime(earlier, ns=(1_000_000_000, 1_000_000_000))
    for n in range(3):
        (tmp_path / f"2-{n:06d}.eml").write_text("Subject: this run\n")
    (tmp_path / "notes.txt").write_text("not an e-mail")

    assert captured_since(tmp_path, started_ns=2_000_000_000) == 3
