from meter_export.storage import samples as sink


class _DriverError(Exception):
    pass


def test_a_refusal_reason_is_the_first_line_of_the_driver_message():
    assert sink._first_line(_DriverError("CHECK constraint failed\nDETAIL: row (...)")) == "CHECK constraint failed"


def test_an_empty_driver_message_still_gives_a_reason():
    # str() of some driver errors is empty; the reason must not crash on it.
    assert sink._first_line(_DriverError()) == "_DriverError"


def test_a_message_starting_with_a_blank_line_gives_its_first_words():
    assert sink._first_line(_DriverError("\n  \nvalue too long")) == "value too long"
