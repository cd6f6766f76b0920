"""Finding every file under a split's folder, and deciding which ones can be images of a class.

A split's input pattern is `<root>/*/*` (`*/*` for the data root itself), where `<root>` may hold
TFX's `{SPAN}`/`{VERSION}` placeholders, already replaced by the driver with the chosen span when
the executor runs. The executor does not trust the glob to find everything: it walks `<root>`
completely, so every file there is ingested, quarantined with a reason, or skipped as a system
file.

`classify` is the one rule, used by the ExampleGen and by `imgpipe run`'s scan of the data folder
before anything runs: what the operating system leaves in folders (`system_file_reason`) is
skipped, listed but never counted as quarantined; any other file that is not an image directly in
a class folder is quarantined.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterator

from components.image_example_gen.formats import IMAGE_EXTENSIONS, is_image_path

CLASS_FILES = "*/*"
GIVEN_SPLITS = ("train", "eval")  # a data folder that brings its own split
SPAN_FOLDER = re.compile(r"span-([0-9]+)")
SKIPPED = "skipped"  # the kind `classify` gives a system file: listed, not quarantined
# What file managers write beside the data, by lower-cased name. Names starting with '.' (macOS
# Finder's .DS_Store, its ._* AppleDouble files, hidden folders such as .git) are skipped too.
SYSTEM_FILE_NAMES = {
    "thumbs.db": "Windows Explorer's thumbnail cache",
    "ehthumbs.db": "Windows Media Center's thumbnail cache",
    "desktop.ini": "Windows Explorer's folder settings",
}


BAD_NAME_REASON = ("its name is not UTF-8 text, which TFX and TensorFlow cannot list; rename it "
                   "(convmv -r -f latin1 -t utf8 --notest FOLDER)")
REPEATED_FOLDER_REASON = ("a link to a folder that is read already (a symlink loop, or a second "
                          "link to the same folder): its files are read once, there")


@dataclasses.dataclass(frozen=True)
class FoundFile:
    """One file under a split's root: its class folder, or why it cannot be an example."""

    path: str  # as the filesystem names it
    relative: str  # relative to the data root: the `filename` feature and the report's key
    class_name: str | None
    problem: tuple[str, str] | None = None  # (kind, reason) when it is not an image of a class

    @property
    def skipped(self) -> bool:
        """True for a system file: listed, neither an example nor quarantined."""
        return self.problem is not None and self.problem[0] == SKIPPED


def split_root(pattern: str) -> str:
    """`<root>` of a `<root>/*/*` split pattern ('' for `*/*`)."""
    if pattern == CLASS_FILES:
        return ""
    if not pattern.endswith("/" + CLASS_FILES):
        raise ValueError(f"split pattern {pattern!r} must be '<folder>/{CLASS_FILES}' or "
                         f"'{CLASS_FILES}': one class folder per label")
    return pattern[: -len(CLASS_FILES) - 1]


def _join(*parts: str) -> str:
    return posixpath.join(*[p for p in parts if p])


def class_names_under(input_base: str, roots: list[str]) -> tuple[str, ...]:
    """Sorted names of the visible folders directly under any of the roots: label i is name i."""
    import tensorflow as tf

    names = set()
    for root in roots:
        directory = _join(input_base, root)
        for name in tf.io.gfile.listdir(directory):
            name = name.rstrip("/")
            if not name.startswith(".") and tf.io.gfile.isdir(_join(directory, name)):
                names.add(name)
    return tuple(sorted(names))


def system_file_reason(relative_to_root: str) -> str | None:
    """Why a path below a split's root is a system file rather than data; None when it is not."""
    parts = relative_to_root.split("/")
    hidden = [p for p in parts[:-1] if p.startswith(".")]
    if hidden:
        return f"inside hidden folder {hidden[0]!r} (names starting with '.' are not data)"
    name = parts[-1]
    if name == ".DS_Store":
        return "macOS Finder's folder settings"
    if name.startswith("._"):
        return "macOS AppleDouble file (another file's metadata)"
    if name.startswith("."):
        return "hidden file (names starting with '.' are not data)"
    return SYSTEM_FILE_NAMES.get(name.lower())


def classify(relative_to_root: str) -> tuple[str | None, tuple[str, str] | None]:
    """(class name, problem) of a file from its path below the split's root.

    The problem is `(kind, reason)`: kind `SKIPPED` for a system file, a quarantine kind
    (`not_in_class`, `nested`, `unsupported`) for any other file that cannot be an image of a
    class, None for a candidate image.
    """
    parts = relative_to_root.split("/")
    class_name = parts[0] if len(parts) >= 2 and not parts[0].startswith(".") else None
    system = system_file_reason(relative_to_root)
    if system is not None:
        return class_name, (SKIPPED, system)
    if class_name is None:
        return None, ("not_in_class", "not inside a class folder")
    if len(parts) > 2:
        return class_name, ("nested", f"inside a sub-folder of class folder {class_name!r}; only "
                                      "files directly in a class folder are read: move it up")
    if not is_image_path(parts[-1]):
        extension = posixpath.splitext(parts[-1])[1] or "no extension"
        return class_name, ("unsupported", f"not an image file name ({extension}); images are "
                                           f"{' '.join(IMAGE_EXTENSIONS)}, in any case")
    return class_name, None


def _walk_local(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """(folder, file names, repeated folder names) for every folder under a local `top`.

    Like `tf.io.gfile.walk` it follows links to folders (a class folder may be a link), but it
    reads each real folder once: a link back to a folder already read (a symlink loop, or a
    second link to the same folder) is returned as repeated instead of being walked again, where
    `tf.io.gfile.walk` would go round a loop until the path grew too long. Names are as the
    file system gives them (`os.scandir`: a name that is not UTF-8 keeps its bytes as
    surrogates, see `undecodable`).
    """
    def identity(path: str) -> tuple[int, int]:
        status = os.stat(path)
        return status.st_dev, status.st_ino

    seen = {identity(top)}
    pending = [top]
    while pending:
        folder = pending.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError:
            continue  # unreadable folders are the preflight's and the reader's to report
        files, repeated = [], []
        for entry in entries:
            try:
                is_folder = entry.is_dir()  # follows links
                key = identity(entry.path) if is_folder else None
            except OSError:
                is_folder, key = False, None  # a link to nothing: read, and quarantined, as a file
            if not is_folder:
                files.append(entry.name)
            elif key in seen:
                repeated.append(entry.name)
            else:
                seen.add(key)
                pending.append(entry.path)
        yield folder, files, repeated


def undecodable(name: str) -> bool:
    """True for a name whose bytes are not UTF-8 (os.fsdecode keeps them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def shown(name: str) -> str:
    """A file name as text even when its bytes are not UTF-8: `bad\\xffname.png`."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def iter_files(input_base: str, root: str) -> Iterator[FoundFile]:
    """Every file under `input_base/root`, system and nested ones included, as listed.

    A generator, one folder's listing at a time: what Beam's listing step runs on a worker
    (`convert.ListFiles`), so a folder of 100,000 files is never held as one list. A local
    folder is walked by `_walk_local` (links to folders read once, names that are not UTF-8
    quarantined by name); a remote one (`gs://`) by `tf.io.gfile.walk`.
    """
    top = _join(input_base, root)
    if "://" in top:
        import tensorflow as tf

        listing = ((folder, files, []) for folder, _, files in tf.io.gfile.walk(top))
    else:
        listing = _walk_local(top)
    for directory, files, repeated in listing:
        for name in files:
            path = _join(directory.rstrip("/"), name)
            below_root = path[len(top):].lstrip("/")
            if undecodable(below_root):
                relative = _join(root, shown(below_root))
                yield FoundFile(path, relative, None, ("bad_name", BAD_NAME_REASON))
                continue
            class_name, problem = classify(below_root)
            yield FoundFile(path, _join(root, below_root), class_name, problem)
        for name in repeated:
            below_root = shown(_join(directory.rstrip("/"), name)[len(top):].lstrip("/"))
            class_name = below_root.split("/")[0] if "/" in below_root else None
            yield FoundFile(_join(directory.rstrip("/"), name), _join(root, below_root),
                            class_name, (SKIPPED, REPEATED_FOLDER_REASON))


def find_files(input_base: str, root: str) -> list[FoundFile]:
    """Every file under `input_base/root`, system and nested ones included, in path order."""
    return sorted(iter_files(input_base, root), key=lambda f: f.relative)


def _span_folders(input_base: str) -> dict[int, str]:
    """Span number -> `span-<N>` folder name, for the span folders directly under the data root."""
    import tensorflow as tf

    folders = {}
    for name in tf.io.gfile.listdir(input_base):
        match = SPAN_FOLDER.fullmatch(name.rstrip("/"))
        if match:
            folders[int(match.group(1))] = name.rstrip("/")
    return folders


def _in_span(root: str, span: int) -> bool:
    return f"span-{span}" in root.split("/")


def _with_span(root: str, span: int, folder: str) -> str:
    return "/".join(folder if part == f"span-{span}" else part for part in root.split("/"))


def window_roots(input_base: str, roots: list[str], span: int, window: int
                 ) -> list[tuple[int, str]]:
    """(span, root) of every split root to read: the roots of spans `span-window+1 .. span`.

    `roots` are the split roots of the resolved span (`span-<span>/...`). Roots of the earlier
    spans in the window are those whose folder exists (a missing span is simply not read);
    the resolved span's roots are always kept. With `window == 1` the roots are returned as
    they are (span folders or not).

    Raises:
        ValueError: `window` is below 1, or above 1 while the roots are not in span folders.
    """
    if window < 1:
        raise ValueError(f"the span window must be at least 1, got {window}")
    if window == 1:
        return [(span, root) for root in roots]
    if not roots or not all(_in_span(root, span) for root in roots):
        raise ValueError(f"a window of {window} spans needs the data in span-<N>/ folders "
                         f"(DATA/span-<N>/...), but the input is read from {roots}; use a "
                         "window of 1 or lay the data out in span folders")
    import tensorflow as tf

    folders = _span_folders(input_base)
    result = []
    for number in range(span - window + 1, span + 1):
        for root in roots:
            if number == span:
                result.append((span, root))
            elif number in folders:
                older = _with_span(root, span, folders[number])
                if tf.io.gfile.isdir(_join(input_base, older)):
                    result.append((number, older))
    return result


def span_of(relative: str) -> int | None:
    """The span number of a path relative to the data root (`span-<N>/...`), None outside."""
    match = SPAN_FOLDER.fullmatch(relative.split("/", 1)[0])
    return int(match.group(1)) if match else None


def previous_span(input_base: str, roots: list[str], span: int, window: int = 1
                  ) -> tuple[int, dict[str, int], list[int]] | None:
    """(number, image files per class, spans read) of the window before this one.

    That window ends at the latest `span-<N>` folder before `span` and has `window` spans,
    as the run that read that span did. None when the roots are not in a `span-<span>`
    folder or no earlier span exists. Counts go by file names (nothing is opened): enough to
    see classes appear, vanish or shift.
    """
    if not roots or any(not _in_span(root, span) for root in roots):
        return None
    earlier = [n for n in _span_folders(input_base) if n < span]
    if not earlier:
        return None
    number = max(earlier)
    previous_roots = [_with_span(root, span, f"span-{number}") for root in roots]
    import tensorflow as tf

    counts: dict[str, int] = {}
    spans = set()
    for previous, root in window_roots(input_base, previous_roots, number, window):
        if not tf.io.gfile.isdir(_join(input_base, root)):
            continue
        spans.add(previous)
        for found in find_files(input_base, root):
            if found.problem is None:
                counts[found.class_name] = counts.get(found.class_name, 0) + 1
    return number, dict(sorted(counts.items())), sorted(spans)
