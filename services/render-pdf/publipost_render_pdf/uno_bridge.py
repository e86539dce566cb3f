"""The LibreOffice side of a render-pdf worker, run by the system Python that has `uno` (python3-uno).

    /usr/bin/python3 uno_bridge.py SOFFICE PROFILE_DIR [PRELOAD]

It starts one headless soffice with a private profile (and PRELOAD, an
allocator library, in its LD_PRELOAD), connects over a pipe, then converts
one file per request, for as long as it lives:

    stdin:  {"source": "/tmp/x.docx", "target": "/tmp/x.pdf"[, "pdfa": true]}  (pdfa: a PDF/A-3b)
    stdout: {"ok": true} | {"ok": false, "error": "..."}

The first line it writes is {"ready": true, "pid": <soffice.bin pid>}. PDFs
carry the documents' bookmarks as named destinations (the service finds where
each document of a combined chunk starts from them). It only depends on the
standard library and uno, because the service's virtual environment is a
different Python.

soffice.bin is started directly, not through the `soffice` launcher (a script
that runs oosplash, which runs soffice.bin as its child): it is then this
bridge's own child and gets SIGKILL when the bridge dies (the service starts
the bridge the same way), so a killed service leaves no LibreOffice behind.
LibreOffice loads nothing a document links to (see _LOCKED_DOWN).
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid

import uno
from com.sun.star.beans import PropertyValue
from com.sun.star.connection import NoConnectException
from parent_death import killed_with_parent  # beside this file, standard library only

CONNECT_TIMEOUT_S = 60
# soffice.bin asks to be started again by exiting with this status (oosplash does it for the launcher),
# for instance on its first start with a new profile.
RESTART_REQUESTED = 81


def _props(**values):
    result = []
    for name, value in values.items():
        prop = PropertyValue()
        prop.Name, prop.Value = name, value
        result.append(prop)
    return tuple(result)


PDF_OPTIONS = uno.Any("[]com.sun.star.beans.PropertyValue", _props(ExportBookmarksToPDFDestination=True))
# PDF/A-3b (SelectPdfVersion=3), the base of a Factur-X invoice: fonts embedded, XMP and an output intent written.
PDFA3_OPTIONS = uno.Any(
    "[]com.sun.star.beans.PropertyValue", _props(ExportBookmarksToPDFDestination=True, SelectPdfVersion=3)
)


def _office_program(soffice):
    """soffice.bin beside the `soffice` launcher given, else the program as given."""
    found = shutil.which(soffice)
    if found is not None:
        program = os.path.join(os.path.dirname(os.path.realpath(found)), "soffice.bin")
        if os.access(program, os.X_OK):
            return program
    sys.stderr.write(f"uno_bridge: no soffice.bin beside {soffice}: its processes may outlive the service\n")
    return soffice


def _office_pid(launcher_pid):
    """soffice is a launcher (oosplash) that runs soffice.bin: report the process that does the work,
    the one a crash takes down."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with contextlib.suppress(OSError, IndexError):
                    with open(f"/proc/{entry}/stat") as stat:
                        fields = stat.read().rsplit(")", 1)[1].split()
                    if int(fields[1]) == launcher_pid:
                        return int(entry)
        time.sleep(0.05)
    return launcher_pid


def _running(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_soffice(soffice, profile_dir, preload=""):
    pipe = f"publipost-{uuid.uuid4().hex}"
    # What the launcher script sets before it runs soffice.bin.
    environment = {**os.environ, "SAL_ENABLE_FILE_LOCKING": "1", **({"LD_PRELOAD": preload} if preload else {})}
    arguments = [
        _office_program(soffice),
        "--headless",
        "--invisible",
        "--nologo",
        "--nodefault",
        "--norestore",
        "--nolockcheck",
        f"-env:UserInstallation=file://{profile_dir}",
        f"--accept=pipe,name={pipe};urp;StarOffice.ComponentContext",
    ]

    def launch():
        return subprocess.Popen(
            arguments,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=environment,
            preexec_fn=killed_with_parent(),  # noqa: PLW1509 - it makes one system call, no lock
        )

    process = launch()
    local = uno.getComponentContext()
    resolver = local.ServiceManager.createInstanceWithContext("com.sun.star.bridge.UnoUrlResolver", local)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        if process.poll() == RESTART_REQUESTED:
            process = launch()
        elif process.returncode is not None:
            raise RuntimeError(f"soffice exited with status {process.returncode} while starting")
        try:
            context = resolver.resolve(f"uno:pipe,name={pipe};urp;StarOffice.ComponentContext")
            break
        except NoConnectException:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"soffice did not answer within {CONNECT_TIMEOUT_S}s") from None
            time.sleep(0.1)
    _lock_down(context)
    desktop = context.ServiceManager.createInstanceWithContext("com.sun.star.frame.Desktop", context)
    return process, desktop


# LibreOffice's "stealth mode": a document outside the trusted locations (there are none) loads no linked
# picture or other linked resource; without it a picture linked to http://... is fetched at each
# conversion. The service removes such links before conversion; this holds for whatever slips through.
_LOCKED_DOWN = {
    "/org.openoffice.Office.Common/Security/Scripting": {
        "BlockUntrustedRefererLinks": True,
        "SecureURL": uno.Any("[]string", ()),
    },
}


def _lock_down(context):
    provider = context.ServiceManager.createInstanceWithContext(
        "com.sun.star.configuration.ConfigurationProvider", context
    )
    for node, values in _LOCKED_DOWN.items():
        access = provider.createInstanceWithArguments(
            "com.sun.star.configuration.ConfigurationUpdateAccess", _props(nodepath=node)
        )
        for name, value in values.items():
            uno.invoke(access, "setPropertyValue", (name, value))  # invoke: keeps the typed empty list typed
        access.commitChanges()


def _convert(desktop, source, target, pdfa=False):
    document = desktop.loadComponentFromURL(
        uno.systemPathToFileUrl(source), "_blank", 0, _props(Hidden=True, ReadOnly=True, UpdateDocMode=0)
    )
    if document is None:
        raise RuntimeError("LibreOffice could not open the document")
    try:
        document.storeToURL(
            uno.systemPathToFileUrl(target),
            _props(FilterName="writer_pdf_Export", FilterData=PDFA3_OPTIONS if pdfa else PDF_OPTIONS),
        )
    finally:
        document.close(True)


def main():
    soffice, profile_dir, preload = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
    process, desktop = _start_soffice(soffice, profile_dir, preload)

    def stop(*_):
        with contextlib.suppress(Exception):  # soffice may already be gone
            desktop.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    out = sys.stdout
    office_pid = process.pid if process.args[0].endswith("soffice.bin") else _office_pid(process.pid)
    out.write(json.dumps({"ready": True, "pid": office_pid}) + "\n")
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            _convert(desktop, request["source"], request["target"], request.get("pdfa", False))
            reply = {"ok": True}
        except Exception as exc:  # noqa: BLE001 - every failure is reported to the service
            if process.poll() is not None or not _running(office_pid):
                out.write(json.dumps({"ok": False, "error": "LibreOffice crashed", "fatal": True}) + "\n")
                out.flush()
                sys.exit(1)
            reply = {"ok": False, "error": f"{type(exc).__name__}: {getattr(exc, 'Message', '') or exc}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()
    stop()


if __name__ == "__main__":
    main()
