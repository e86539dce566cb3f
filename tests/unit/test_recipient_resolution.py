from publipost_recipient_directory.domain import is_valid_address, resolve


def test_the_record_address_wins_over_the_directory():
    assert resolve("a@x.test", "C1", {"email": "b@x.test"}).rule == "record"


def test_a_malformed_record_address_falls_back_to_the_directory():
    resolution = resolve("a@@x", "C1", {"email": "b@x.test"})
    assert (resolution.email, resolution.rule) == ("b@x.test", "directory")


def test_no_address_anywhere_says_why():
    resolution = resolve(None, "C1", {"email": None})
    assert resolution.email is None
    assert resolution.reason == "the record has no e-mail; customer C1 has no e-mail in the recipient directory"
    assert resolve(None, None, None).reason == "the record has no e-mail; the record has no customer number to look up"


def test_address_syntax():
    assert is_valid_address("first.last+tag@sub.example.test")
    for bad in ("", "a", "a@b", "a b@c.test", "<a@b.test>", "a@b.test,c@d.test"):
        assert not is_valid_address(bad), bad
