"""python-threatexchange (PyPI `threatexchange`) as the oracle for matching images against a
list file: `threatexchange match --all photo IMAGE` after the list was set up as a `local_file`
collaboration and fetched, as a user of that CLI does:

    threatexchange config collab edit local_file standin --create --filename LIST
    threatexchange fetch
    threatexchange match --all photo IMAGE        # once per image

The commands run in this process through `threatexchange.cli.main.inner_main` (the entry point
the package's own tests call and its `threatexchange` script wraps), so that the images cost one
interpreter start instead of one each. All state lives in STATE_DIR (the caller also points HOME
and TX_STATEDIR there, so nothing outside it is read or written).

Usage: pytx_match.py STATE_DIR LIST_FILE IMAGE...

Prints one line per image, tab-separated:
    IMAGE  HASH  QUALITY  DISTANCES
HASH and QUALITY are what pytx's own hasher (`pdq_from_file`) computes for the image, so the
caller can tell a hashing difference from a matching difference. DISTANCES are the distances
`match --all photo` printed, one per matched list value, sorted and comma-separated, or `-` for
none. pytx cannot match an image of quality under 50 (its hasher gives it no hash, and the index
query then fails); such an image is reported with DISTANCES `unhashable`. Any other failure is
raised.
"""
import contextlib
import io
import pathlib
import sys

from threatexchange.cli.main import inner_main
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file
from threatexchange.signal_type.pdq.signal import PdqSignal


def run(state_dir: pathlib.Path, *args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        inner_main(list(args), state_dir=state_dir)
    return out.getvalue()


def main() -> None:
    state_dir = pathlib.Path(sys.argv[1]).absolute()
    list_file = pathlib.Path(sys.argv[2]).absolute()
    run(state_dir, "config", "collab", "edit", "local_file", "standin", "--create",
        "--filename", str(list_file))
    # `fetch` reports its progress on stdout; it is not part of the answer.
    run(state_dir, "fetch")
    for image in sys.argv[3:]:
        digest, quality = pdq_from_file(pathlib.Path(image))
        if quality < PdqSignal.QUALITY_THRESHOLD:
            print(f"{image}\t{digest}\t{quality}\tunhashable")
            continue
        distances = []
        for line in run(state_dir, "match", "--all", "photo", image).splitlines():
            # `<signal type> <distance> (<collab>) <category> [tags]`
            fields = line.split()
            if fields[0] != "pdq":
                raise ValueError(f"unexpected match line {line!r}")
            distances.append(int(fields[1]))
        text = ",".join(str(d) for d in sorted(distances)) or "-"
        print(f"{image}\t{digest}\t{quality}\t{text}")


if __name__ == "__main__":
    main()
