"""_checker.serving names why netlab stopped a learner's server: a loop that prints without
end is not told it spins on recv() returning b'' (netlab's runaway note mentions b'' too),
and a loop that does spin on b'' is; a NameError names the import cell."""

import socket

from exercise_asserts import fails_with

from helpers.exercises import nb04, nb05
from helpers.exercises._checker import HINT_EOF_SPIN, HINT_RUNAWAY


def prints_for_ever(port):
    with socket.create_server(("127.0.0.1", port)) as listener:
        conn, _ = listener.accept()
        data = conn.recv(1024)
        while True:  # never another socket call: a runaway printer
            print("got", data)


def spins_on_eof(port):
    with socket.create_server(("127.0.0.1", port)) as listener:
        while True:
            conn, _ = listener.accept()
            with conn:
                while True:
                    data = conn.recv(1024)
                    if data == "":  # a str: never equal to b''
                        break
                    conn.sendall(data)


def test_a_runaway_printer_gets_the_runaway_hint_not_the_eof_one():
    verdict = nb04.check_echo_server(prints_for_ever)
    fails_with(
        verdict,
        HINT_RUNAWAY[:40],
        what=["lines in one go"],
        absent=["recv() after the client had closed"],
    )


def test_a_loop_spinning_on_eof_gets_the_eof_hint():
    verdict = nb04.check_echo_server(spins_on_eof)
    fails_with(verdict, HINT_EOF_SPIN[:40])


def test_a_name_error_before_listening_names_the_import_cell():
    """After a kernel restart a learner's server meets a module it never imported: the
    hint says which name and which cell, not "bind() and listen() first"."""

    def forgot_the_import(port):
        listener = selectors.DefaultSelector()  # noqa: F821 (the missing import)
        listener.close()

    verdict = nb04.check_echo_server(forgot_the_import)
    fails_with(
        verdict,
        "'selectors'",
        "import cell",
        what=["NameError"],
        absent=["bind() and listen() first"],
    )


def test_a_name_error_for_another_cells_function_names_that_cell():
    """After a restart, Exercise 3's server calls Exercise 2's handle_command, whose cell
    has not run again: the hint says to run the cell that defines it, not an import."""

    def uses_an_undefined_function(port):
        return handle_command_of_another_cell(port)  # noqa: F821 (that cell not run)

    verdict = nb04.check_echo_server(uses_an_undefined_function)
    fails_with(
        verdict,
        "'handle_command_of_another_cell'",
        "run the cell that defines handle_command_of_another_cell",
        what=["NameError"],
        absent=["import cell"],
    )


def test_a_misspelled_name_is_named_with_the_one_meant():
    """A walkthrough's typo, `adress` for `addr`: the hint asks 'did you mean', it does
    not send the learner looking for a cell that defines `adress`."""

    def typo(port):
        with socket.create_server(("127.0.0.1", port)) as listener:
            conn, addr = listener.accept()
            with conn:
                conn.sendall(f"Hello, {adress[0]}".encode())  # noqa: F821 (the typo)

    verdict = nb04.check_echo_server(typo)
    fails_with(verdict, "did you mean 'addr'?", what=["NameError"], absent=["defines adress"])


def test_thread_args_without_the_comma_is_named():
    """A walkthrough's Thread(target=serve, args=(conn)): a TypeError in the thread, named
    as the missing comma, not as an echo that does not loop."""
    import threading

    def serve(conn):
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def threaded_server(port):
        with socket.create_server(("127.0.0.1", port)) as listener:
            while True:
                conn, _ = listener.accept()
                threading.Thread(target=serve, args=(conn)).start()  # not a tuple

    verdict = nb05.check_threaded_server(threaded_server)
    fails_with(verdict, "args=(conn,), with the comma", what=["TypeError"])
