"""Finding the files to ingest: walking folders, honouring ignore files and exclude patterns,
following links once, and saying what was passed over and why."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pathspec

from ..errors import InvalidOptionError, SourceNotFoundError
from ..globs import re2_text
from ..results import PROBLEM, REFUSED, UNSUPPORTED, Skipped
from .formats import SUFFIXES
from .reading import NOT_REGULAR, OUTSIDE, _open_nonblocking, is_within, os_error_reason

IGNORE_FILES = (".gitignore", ".ignore")  # in increasing precedence, as ripgrep has them
MAX_IGNORE_FILE = 1_000_000  # bytes of an ignore file read; the rest is left out
MAX_PATTERNS = 1_000  # exclude patterns given at once
MAX_PATTERN_CHARS = 1_000  # characters in one pattern (longer lines of an ignore file are passed over)


@dataclass(frozen=True)
class Walk:
    """What a walk over the ingest paths found."""

    files: list[Path]
    skipped: list[Skipped]
    folders: list[Path]  # the folders walked: documents gone from them are removed
    within: tuple[str, ...] = ()  # real paths of the only folders files may be read from, if any
    named: list[Path] = field(default_factory=list)  # the paths given that are not folders

    @property
    def scope(self) -> tuple[list[Path], list[Path]]:
        """(folders, files): where an ingest of this walk may find documents gone, and so remove
        them. Nothing else: an ingest of one file never touches the index's other documents."""
        return self.folders, self.named


def walk(
    paths: Iterable[Path],
    exclude: Iterable[Path] = (),
    patterns: Sequence[str] = (),
    suffixes: tuple[str, ...] = SUFFIXES,
    within: Sequence[Path] = (),
    ignore_files: bool = True,
) -> Walk:
    """Every file of a type semsearch reads under ``paths`` (absolute, sorted), and what was
    passed over and why.

    Hidden entries, the folders in ``exclude`` and whatever ``patterns`` or ignore files match
    are left out silently. ``patterns`` are ``.gitignore`` lines (pathspec's gitwildmatch),
    matched against each path relative to the folder walked: ``*.log`` or ``build`` at any
    depth, ``docs/old/**`` or ``/tmp`` from the top, ``name/`` folders only, ``!pattern`` to
    take back a path an earlier pattern left out (but not inside a folder left out: that is
    never entered). Matching is case-sensitive. With ``ignore_files``, the ``.gitignore`` and
    ``.ignore`` files in the walked folders are honoured as git and ripgrep do (each for the
    folder it is in and below; a deeper one, then ``.ignore`` over ``.gitignore``, then
    ``patterns`` decide last), and those of the folders above a root up to its git repository's
    top. A file named in ``paths`` is always taken. Symbolic links are followed; a folder
    reached twice (a link loop, or two links to one folder) is walked once and the repeat
    reported. With ``within``, a path (or link target) outside those folders is passed over,
    and why.
    """
    roots = [Path(os.path.abspath(p)) for p in paths]
    missing = [str(p) for p in roots if not os.path.lexists(p)]
    if missing:
        raise SourceNotFoundError(f"No such file or folder: {', '.join(missing)}")
    check_patterns(patterns)
    walker = _Walker(_folder_keys(exclude), ignore_files=ignore_files)
    walker.within = tuple(os.path.realpath(p) for p in within)
    command_line = _spec(patterns)
    files: set[Path] = set()
    folders: list[Path] = []
    named: list[Path] = []
    for root in roots:
        info = walker.stat(root)
        if not walker.inside(root):  # refused: nothing there is read or removed
            continue
        if info is None or not stat.S_ISDIR(info.st_mode):
            named.append(root)
        if info is None:
            continue
        if stat.S_ISDIR(info.st_mode):
            folders.append(root)
            rules = _above(root) if ignore_files else ()
            candidates = walker.files_under(root, info, rules, command_line)
        elif stat.S_ISREG(info.st_mode):
            candidates = [root]
        else:
            walker.skip(root, NOT_REGULAR)
            continue
        for path in candidates:
            if path.suffix.lower() in suffixes:
                files.add(path)
            else:
                walker.skip(path, f"unsupported file type '{path.suffix or '(none)'}'", UNSUPPORTED)
    return Walk(files=sorted(files), skipped=walker.skipped, folders=folders, within=walker.within, named=named)


def _folder_keys(paths: Iterable[Path]) -> set[tuple[int, int]]:
    infos = [os.stat(p) for p in paths if os.path.isdir(p)]
    return {(info.st_dev, info.st_ino) for info in infos}


@dataclass(frozen=True)
class _Rules:
    """The patterns of one ignore file (or of the command line): they apply to the paths under
    ``base`` (relative to the walked root; "" for all), with ``lead`` put before each path to
    make it relative to the ignore file's own folder (for a folder above the root)."""

    spec: pathspec.GitIgnoreSpec
    base: str = ""
    lead: str = ""

    def verdict(self, rel: str, folder: bool) -> bool | None:
        """True: ``rel`` is left out; False: taken back by a ``!`` line; None: no line matches."""
        if self.base:
            if not rel.startswith(self.base + "/"):
                return None
            rel = rel[len(self.base) + 1 :]
        result = self.spec.check_file(re2_text(self.lead + rel + ("/" if folder else "")))
        return result.include


def _spec(lines: Sequence[str]) -> _Rules | None:
    # RE2 matches in linear time: no pattern can make the walk backtrack for ever
    # RE2 cannot take a name's undecodable bytes: patterns and paths carry them alike (re2_text)
    kept = [re2_text(line) for line in lines if len(line) <= MAX_PATTERN_CHARS]
    spec = pathspec.GitIgnoreSpec.from_lines(kept, backend="re2")
    return _Rules(spec) if spec.patterns else None


def check_patterns(patterns: Sequence[str]) -> None:
    """Refuse more exclude patterns, or longer ones, than the limits; InvalidOptionError says which."""
    if len(patterns) > MAX_PATTERNS:
        raise InvalidOptionError(f"At most {MAX_PATTERNS} exclude patterns may be given; {len(patterns)} were")
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise InvalidOptionError(f"An exclude pattern may be at most {MAX_PATTERN_CHARS} characters long")


def _read_rules(path: Path, base: str, lead: str = "") -> _Rules | None:
    """The rules of the ignore file at ``path``; an unreadable one is passed over."""
    try:
        with open(path, "rb", opener=_open_nonblocking) as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            text = handle.read(MAX_IGNORE_FILE).decode("utf-8", errors="surrogateescape")  # as names are
    except OSError:
        return None
    rules = _spec(text.splitlines())
    return replace(rules, base=base, lead=lead) if rules else None


def _above(root: Path) -> tuple[_Rules, ...]:
    """The ignore files of the folders above ``root`` up to the top of its git repository (none
    when it is not in one, or is the top itself), outermost first. A folder named to be walked
    is walked even where these leave it out, and then they do not apply to it at all."""
    if (root / ".git").exists():
        return ()
    chain: list[Path] = []
    for folder in root.parents:
        chain.append(folder)
        if (folder / ".git").exists():
            break
    else:
        return ()
    rules: list[_Rules] = []
    for folder in reversed(chain):
        lead = root.relative_to(folder).as_posix() + "/"
        for name in IGNORE_FILES:
            found = _read_rules(folder / name, "", lead) if (folder / name).is_file() else None
            if found:
                rules.append(found)
    return () if ignored([replace(r, lead=r.lead[:-1]) for r in rules], "", folder=True) else tuple(rules)


@dataclass
class _Walker:
    excluded: set[tuple[int, int]]  # (st_dev, st_ino) of folders never to enter
    ignore_files: bool = True
    skipped: list[Skipped] = field(default_factory=list)
    reported: set[Path] = field(default_factory=set)  # roots may overlap: report each path once
    within: tuple[str, ...] = ()  # real paths of the only folders to read from, if any

    def inside(self, path: Path) -> bool:
        """Whether ``path``, links resolved, is within the allowed folders; if not, say so."""
        if not self.within:
            return True
        real = os.path.realpath(path)
        if any(is_within(real, top) for top in self.within):
            return True
        self.skip(path, OUTSIDE, REFUSED)
        return False

    def skip(self, path: Path, reason: str, kind: str = PROBLEM) -> None:
        if path not in self.reported:
            self.reported.add(path)
            self.skipped.append(Skipped(str(path), reason, kind))

    def stat(self, path: Path, rel: str = "", rules: Sequence[_Rules] = ()) -> os.stat_result | None:
        """os.stat of ``path``, links followed; on failure None, and why unless ``rel`` is left out."""
        try:
            return os.stat(path)
        except OSError as exc:
            if not (rel and ignored(rules, rel, folder=False)):
                self.skip(path, os_error_reason(exc, path))
            return None

    def files_under(
        self, root: Path, info: os.stat_result, above: tuple[_Rules, ...], command_line: _Rules | None
    ) -> list[Path]:
        """Regular files under ``root``: real folders first, then those reached by a link."""
        found: list[Path] = []
        seen: set[tuple[int, int]] = set()
        real: list[_Folder] = [(root, "", (info.st_dev, info.st_ino), (), above)]
        linked: list[_Folder] = []
        while real or linked:
            folder, rel, key, up, rules = real.pop() if real else linked.pop()
            if up and key in self.excluded:
                continue
            if key in seen:
                self.skip(folder, "symbolic-link loop" if key in up else "already walked via another path")
                continue
            seen.add(key)
            for path, child, sub_key, is_link, inner in reversed(
                self._entries(folder, rel, rules, command_line, found)
            ):
                (linked if is_link else real).append((path, child, sub_key, (*up, key), inner))
        return found

    def _entries(
        self, folder: Path, rel: str, rules: tuple[_Rules, ...], command_line: _Rules | None, found: list[Path]
    ) -> list[tuple[Path, str, tuple[int, int], bool, tuple[_Rules, ...]]]:
        """Go through ``folder``: regular files into ``found``; the folders to enter returned,
        each with the ignore rules that hold inside it."""
        try:
            with os.scandir(folder) as scan:
                listed = sorted((e.name, e.is_symlink()) for e in scan)
        except OSError as exc:
            self.skip(folder, os_error_reason(exc, folder))
            return []
        names = {name for name, _ in listed}
        if self.ignore_files:
            own = (_read_rules(folder / name, rel) for name in IGNORE_FILES if name in names)
            rules = (*rules, *(r for r in own if r))
        every = (*rules, command_line) if command_line else rules
        folders = []
        for name, is_link in listed:
            if name.startswith("."):
                continue
            path, child = folder / name, f"{rel}/{name}" if rel else name
            info = self.stat(path, child, every)
            if info is None:
                continue
            is_dir = stat.S_ISDIR(info.st_mode)
            if ignored(every, child, is_dir) or (is_link and not self.inside(path)):  # left out: not refused
                continue
            if is_dir:
                folders.append((path, child, (info.st_dev, info.st_ino), is_link, rules))
            elif stat.S_ISREG(info.st_mode):
                found.append(path)
            else:  # FIFOs, sockets, devices: opening a FIFO waits forever for a writer
                self.skip(path, NOT_REGULAR)
        return folders


def ignored(rules: Sequence[_Rules], rel: str, folder: bool) -> bool:
    """Whether ``rules`` leave out ``rel``: the last one with a matching line decides."""
    out = False
    for rule in rules:
        verdict = rule.verdict(rel, folder)
        if verdict is not None:
            out = verdict
    return out


# a folder to walk: (path, path relative to the root, (st_dev, st_ino), keys of the folders
# above, the ignore rules in force in it)
_Folder = tuple[Path, str, tuple[int, int], tuple[tuple[int, int], ...], tuple[_Rules, ...]]
