"""Training data: manifests of (audio, caption) rows and deterministic fixed-length batches.

Manifest forms (`read_manifest`):
  *.jsonl / *.jsonlines   one JSON object per line: {"wav": path, "caption": text}
  *.json                  the AudioLDM form {"data": [{"wav": path, "caption": text}, ...]} (or a bare list)
  *.csv / *.tsv           a header with a path column (wav, path, audio, file_name, filename, file) and a
                          caption column (caption, text); AudioCaps files without a path column find
                          `<audiocap_id>.wav` / `<youtube_id>.wav` / `Y<youtube_id>.wav` next to the CSV
  a folder                every audio file in it (recursively), captioned by a same-named `.txt` file
JSON rows may add "captions": a list of further captions of the same clip (Clotho gives 5 a clip):
each training sample draws one of them and "caption" (which may then be left out), so the model learns
the clip under every phrasing; validation uses "caption".
Relative paths are relative to the manifest's folder. A row may name a precomputed latent file
(`*.latent.safetensors`, written by `audioldm encode`) instead of audio: the `ldm` stage then skips the VAE.

Bad rows (missing file, empty caption where one is required, unparsable line) are logged with their
line number and skipped; unreadable audio found while training is logged once and replaced by the next
good row. A manifest without any usable row is a `UsageError`.

Batches are a pure function of (seed, step): `global_batch(step)` picks rows from per-epoch
permutations, and every random choice for one sample (crop offset, caption dropout, which caption) comes
from a generator seeded by (seed, step, position in the global batch). Resuming at step N or splitting the
global batch over processes therefore sees exactly the same samples.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import AudioReadError, ModelError, UsageError

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".opus", ".m4a")
LATENT_SUFFIX = ".latent.safetensors"
LATENT_SUFFIXES = (LATENT_SUFFIX, ".latent.npy")  # `audioldm encode` (--format npy: + a .latent.json beside)
PATH_COLUMNS = ("wav", "path", "audio", "file_name", "filename", "file", "latent")
CAPTION_COLUMNS = ("caption", "text")
ALTERNATIVES_COLUMN = "captions"  # JSON rows: every caption of the clip, one drawn per training sample


@dataclass(frozen=True)
class Row:
    """One usable manifest row. `where` is e.g. 'train.jsonl:12', used in every message about it.
    `alternatives` are further captions of the same clip (a JSON row's "captions" list, as Clotho
    gives 5 per clip): training draws one of `caption` and them per sample."""

    path: Path
    caption: str
    where: str
    alternatives: tuple[str, ...] = ()

    @property
    def options(self) -> tuple[str, ...]:
        """Every distinct non-empty caption of the row, `caption` first (just `caption` if it has none)."""
        found = tuple(dict.fromkeys(c for c in (self.caption, *self.alternatives) if c))
        return found or (self.caption,)

    @property
    def is_latent(self) -> bool:
        return self.path.name.endswith(LATENT_SUFFIXES)


def rows_fingerprint(rows: Sequence[Row]) -> str:
    """A short hash of the rows (paths and captions, in order): a resumed run compares it with its start's."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(f"{row.path.resolve()}\t{row.caption}\t{'|'.join(row.alternatives)}\n".encode())
    return digest.hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# manifests


def read_manifest(source: str | Path, *, require_captions: bool = False, option: str = "data") -> list[Row]:
    """Parse a manifest file or folder into usable rows; bad rows are logged with their line and skipped.
    Errors name the file as the argument `option` (`data`, `val_data`), a flag on the command line."""
    return parse_manifest(source, require_captions=require_captions, option=option)[0]


def parse_manifest(
    source: str | Path, *, require_captions: bool = False, option: str = "data", log: bool = True
) -> tuple[list[Row], list[str]]:
    """`read_manifest`, also returning the skipped rows (each "where: why", logged unless `log` is False:
    the other processes of a distributed run read the same manifest)."""
    source = Path(source)
    if not source.exists():
        raise UsageError("no such file or folder", **{option: source})
    if source.is_dir():
        rows, problems = _folder_rows(source)
    else:
        suffix = source.suffix.lower()
        if suffix not in (".jsonl", ".jsonlines", ".ndjson", ".json", ".csv", ".tsv"):
            raise UsageError(
                f"unknown manifest type {suffix!r}; use .jsonl, .json, .csv, .tsv or a folder",
                **{option: source},
            )
        try:
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read it as UTF-8 text ({e})", **{option: source}) from None
        if suffix == ".json":
            rows, problems = _json_rows(source, text, option)
        elif suffix in (".csv", ".tsv"):
            rows, problems = _csv_rows(source, text, "\t" if suffix == ".tsv" else ",", option)
        else:
            rows, problems = _jsonl_rows(source, text)
    good = []
    for row in rows:
        reason = _row_problem(row, require_captions)
        if reason:
            problems.append(f"{row.where}: {reason}")
        else:
            good.append(row)
    for problem in problems if log else ():
        logger.warning("%s; row skipped", problem)
    if not good:
        first = f" (first: {problems[0]})" if problems else ""
        raise UsageError(f"no usable rows, {len(problems)} bad{first}", **{option: source})
    if log:
        logger.info("%s: %d rows (%d skipped)", source, len(good), len(problems))
    return good, problems


def _row_problem(row: Row, require_captions: bool) -> str | None:
    if not row.path.is_file():
        return f"file not found: {row.path}"
    if require_captions and not row.caption.strip():
        return "empty caption (this stage needs one per row)"
    return None


def _resolve(base: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _pick(record: dict, names: Sequence[str]) -> str | None:
    """The first of `names` the record holds (as text); a ValueError for a value that is not text or a
    number (a list, an object, true: stringified, it would train as Python's text of it)."""
    for name in names:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(f"'{name}' must be text, got {json.dumps(value)[:60]}")  # noqa: TRY004
        return str(value)
    return None


def _record_row(base: Path, record: object, where: str, json_record: bool = True) -> Row | str:
    """A Row from one JSON/CSV record, or the reason it is unusable (a CSV cell holds no list: its
    "captions" column, if any, is not read)."""
    if not isinstance(record, dict):
        return f"{where}: expected an object with 'wav' and 'caption', got {type(record).__name__}"
    try:
        value = _pick(record, PATH_COLUMNS)
        caption = _pick(record, CAPTION_COLUMNS)
    except ValueError as e:
        return f"{where}: {e}"
    if not value:
        return f"{where}: no audio path (one of {', '.join(PATH_COLUMNS)})"
    alternatives = record.get(ALTERNATIVES_COLUMN) if json_record else None
    if alternatives is None:
        alternatives = []
    if not isinstance(alternatives, list) or not all(isinstance(c, str) for c in alternatives):
        return f"{where}: '{ALTERNATIVES_COLUMN}' must be a list of strings, got {alternatives!r:.60}"
    alternatives = [c.strip() for c in alternatives if c.strip()]
    caption = (caption or "").strip() or (alternatives[0] if alternatives else "")
    return Row(_resolve(base, value), caption, where, tuple(alternatives))


def _collect(items: list[Row | str]) -> tuple[list[Row], list[str]]:
    return [r for r in items if isinstance(r, Row)], [r for r in items if isinstance(r, str)]


def _jsonl_rows(source: Path, text: str) -> tuple[list[Row], list[str]]:
    items: list[Row | str] = []
    # "\n" only: str.splitlines() also breaks at U+2028 and U+0085, which JSON strings may hold unescaped
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = f"{source.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            items.append(f"{where}: not valid JSON ({e.msg})")
            continue
        items.append(_record_row(source.parent, record, where))
    return _collect(items)


def _json_rows(source: Path, text: str, option: str = "data") -> tuple[list[Row], list[str]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"not valid JSON (line {e.lineno}: {e.msg})", **{option: source}) from None
    records = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(records, list):
        raise UsageError('expected {"data": [...]} or a list of rows', **{option: source})
    # Entries have no line of their own in a pretty-printed file: report the entry number.
    return _collect(
        [_record_row(source.parent, r, f"{source.name} entry {i}") for i, r in enumerate(records, 1)]
    )


def _csv_records(
    text: str, delimiter: str, quoting: int, strict: bool = False
) -> list[tuple[int, int, list[str]]]:
    """(first line, last line, fields) of every non-blank record; a csv.Error names its line."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting, strict=strict)
    records, done = [], 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return records
        except csv.Error as e:  # e.g. a field over the csv module's size limit: an unclosed quote
            raise csv.Error(f"line {done + 1}: {e}") from None
        first, done = done + 1, reader.line_num
        if row:  # a blank line reads as []
            records.append((first, done, row))


def _csv_rows(source: Path, text: str, delimiter: str, option: str = "data") -> tuple[list[Row], list[str]]:
    """CSV and TSV with the quoting rules csv writers use (a quoted caption may hold commas, tabs, quotes
    and line breaks). A TSV that breaks those rules (a caption that starts with a quote mark: `"Jingle
    Bells" on a piano`) is read again without quoting, with a warning: there a tab ends a field and a
    quote is a character. A record with more fields than the header is a bad row (a caption with an
    unquoted comma); missing trailing fields, and extra empty ones, are empty."""
    tsv = delimiter == "\t"
    try:
        records: list | csv.Error = _csv_records(text, delimiter, csv.QUOTE_MINIMAL, strict=tsv)
    except csv.Error as e:
        records = e
    if tsv and isinstance(records, csv.Error):
        logger.warning(
            "%s: not quoted as csv writers quote (%s); read without quoting: a quote is part of its field",
            source.name,
            records,
        )
        try:
            records = _csv_records(text, delimiter, csv.QUOTE_NONE)
        except csv.Error as e:
            records = e
    if isinstance(records, csv.Error):
        raise UsageError(f"{records} (an unclosed quote in a caption?)", **{option: source})
    spanning = [(a, b) for a, b, _ in records if a < b]
    if tsv and spanning:  # a quoted caption with a line break, or a stray quote that closed far below
        plain = _csv_records(text, delimiter, csv.QUOTE_NONE)
        width = len(plain[0][2]) if plain else 0
        if all(len(row) >= width and not any(f.strip() for f in row[width:]) for _, _, row in plain[1:]):
            logger.warning(
                "%s: a quote opened on line %d closes on line %d; read without quoting, every row has the "
                "header's fields (a quote is part of its field)",
                source.name,
                *spanning[0],
            )
            records = plain
    fields = [f.strip() for f in records[0][2]] if records else []
    has_path = any(f in fields for f in PATH_COLUMNS)
    if not has_path and "audiocap_id" not in fields and "youtube_id" not in fields:
        raise UsageError(
            f"no path column; the header needs one of {', '.join(PATH_COLUMNS)} "
            f"(or AudioCaps' audiocap_id/youtube_id), got {', '.join(fields) or 'nothing'}",
            **{option: source},
        )
    items: list[Row | str] = []
    for first, last, row in records[1:]:
        where = f"{source.name}:{first}"
        if any(f.strip() for f in row[len(fields) :]):
            items.append(
                f"{where}: {len(row)} fields, the header has {len(fields)}"
                + (" (quote a caption that holds a comma)" if delimiter == "," else "")
            )
            continue
        if last > first:
            logger.debug("%s: a quoted field spans lines %d-%d", source.name, first, last)
        record = dict(zip(fields, row))
        if not has_path:
            record = dict(record, wav=_audiocaps_path(source.parent, record))
        items.append(_record_row(source.parent, record, where, json_record=False))
    return _collect(items)


def _audiocaps_path(base: Path, record: dict) -> str:
    """AudioCaps CSVs name no file: look for the usual download names next to the manifest."""
    ids = [record.get("audiocap_id"), record.get("youtube_id")]
    names = [i for i in ids if i] + [f"Y{record['youtube_id']}" for _ in [0] if record.get("youtube_id")]
    for name in names:
        for suffix in AUDIO_SUFFIXES:
            if (base / f"{name}{suffix}").is_file():
                return f"{name}{suffix}"
    return f"{names[0] if names else '?'}.wav"


def _is_run_folder(folder: Path) -> bool:
    """A `train` run folder (config.json + checkpoints/): its validation audio is no training data."""
    return (folder / "config.json").is_file() and (folder / "checkpoints").is_dir()


def _folder_rows(folder: Path) -> tuple[list[Row], list[str]]:
    """Every audio or latent file under `folder`, but those in hidden folders or files, and in run folders
    (`--out` inside `--data` would otherwise train on its own validation audio after a resume)."""
    runs = sorted(p for p in folder.rglob("checkpoints") if p.is_dir() and _is_run_folder(p.parent))
    for run in runs:
        logger.warning("%s: a training run's folder; its files are not read as data", run.parent)

    def wanted(p: Path) -> bool:
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            return False
        if any(p.is_relative_to(run.parent) for run in runs):
            return False
        return p.suffix.lower() in AUDIO_SUFFIXES or p.name.endswith(LATENT_SUFFIXES)

    files = sorted(p for p in folder.rglob("*") if wanted(p) and p.is_file())
    rows, problems = [], []
    for path in files:
        latent = next((s for s in LATENT_SUFFIXES if path.name.endswith(s)), None)
        stem = path.name[: -len(latent)] if latent else path.stem
        caption_file = path.with_name(stem + ".txt")
        try:
            caption = caption_file.read_text(encoding="utf-8").strip() if caption_file.is_file() else ""
        except (OSError, UnicodeDecodeError) as e:
            problems.append(
                f"{caption_file.relative_to(folder)}: caption file is not readable UTF-8 text ({e})"
            )
            continue
        rows.append(Row(path, caption, str(path.relative_to(folder))))
    return rows, problems


# ----------------------------------------------------------------------------------------------
# batches

Reader = Callable[[Path], torch.Tensor]


def sample_generator(seed: int, step: int, position: int) -> torch.Generator:
    """The CPU generator of one sample of one step: identical on every process and after a resume."""
    key = (int(seed) * 1_000_003 + int(step)) * 65_537 + int(position)
    return torch.Generator().manual_seed(key % (2**63 - 1))


class SegmentDataset:
    """Fixed-length random segments of manifest rows, as batches indexed by (step, positions).

    Args:
        rows: usable manifest rows.
        reader: path -> mono float waveform [N] at the training rate (or a latent [C, T, F]).
        segment: segment length in samples.
        latent_segment: segment length in latent frames, for rows that are latent files (None: refused).
        seed: base seed of the row order, crops and caption dropout.
        caption_dropout: probability of replacing a caption by "" (the unconditional branch of CFG).
        start_crop: probability that a training segment starts at its clip's first frame instead of
            at a uniform offset (clips that start at their event's onset, like the corpus of
            examples/corpus, otherwise show the onset in few crops: a 3 s crop of a 5 s clip starts
            within 0.1 s of it ~5 % of the time).
        cache_items: decoded files kept in memory (0 disables the cache), at most `cache_bytes` in all
            (long files would otherwise fill the memory: 512 ten-minute clips are 20 GB).
        skipped: the manifest rows left out before this dataset was built (see `skipped_rows`).
        bad: the set of unreadable row indices to share with another dataset over the same rows (the
            validation set over the first rows of the training manifest: each bad file warned once).
        latent_pad: [C, F] values that pad latent segments past a clip's end (the VAE's latent of
            silence, as padded audio would encode to); None pads with zeros.
    """

    def __init__(
        self,
        rows: Sequence[Row],
        reader: Reader,
        segment: int,
        *,
        latent_segment: int | None = None,
        seed: int = 0,
        caption_dropout: float = 0.0,
        start_crop: float = 0.0,
        cache_items: int = 512,
        cache_bytes: int = 2 * 2**30,
        skipped: Sequence[str] = (),
        bad: set[int] | None = None,
        latent_pad: torch.Tensor | None = None,
    ) -> None:
        if not rows:
            raise UsageError("the dataset has no rows")
        if segment <= 0:
            raise UsageError(f"segment length {segment}: must be > 0")
        if not 0.0 <= caption_dropout <= 1.0:
            raise UsageError("must be in [0, 1]", caption_dropout=caption_dropout)
        if not 0.0 <= start_crop <= 1.0:
            raise UsageError("must be in [0, 1]", start_crop=start_crop)
        self.start_crop = float(start_crop)
        self.rows, self.reader, self.segment = list(rows), reader, int(segment)
        self.latent_segment = latent_segment
        self.seed, self.caption_dropout = int(seed), float(caption_dropout)
        self._bad: set[int] = set() if bad is None else bad
        self._skipped = list(skipped)
        self._cache: OrderedDict[int, torch.Tensor] = OrderedDict()
        self._cache_items, self._cache_bytes, self._cached_bytes = cache_items, cache_bytes, 0
        self.latent_pad = latent_pad
        self._orders: OrderedDict[int, list[int]] = OrderedDict()  # pass -> row order (see pass_order)

    def __len__(self) -> int:
        return len(self.rows)

    def skipped_rows(self) -> list[str]:
        """Rows left out so far: the manifest's bad rows, then those found unreadable while training."""
        return self._skipped + [
            f"{self.rows[i].where}: cannot read {self.rows[i].path}"
            for i in sorted(self._bad)
            if i < len(self.rows)  # a set shared with a larger dataset (`bad`) may hold its indices too
        ]

    def row_index(self, step: int, position: int, batch_size: int) -> int:
        """Row at `position` of global batch `step`: one fixed permutation per pass over the data."""
        flat = step * batch_size + position
        epoch, offset = divmod(flat, len(self.rows))
        return self.pass_order(epoch)[offset]

    def pass_order(self, epoch: int) -> list[int]:
        """The row order of pass `epoch` (the last two are kept: a batch spans at most two passes;
        drawing the permutation for every sample made batch assembly the GPU training bottleneck)."""
        order = self._orders.get(epoch)
        if order is None:
            gen = torch.Generator().manual_seed(self.seed * 7919 + epoch)
            order = self._orders[epoch] = torch.randperm(len(self.rows), generator=gen).tolist()
            while len(self._orders) > 2:
                self._orders.popitem(last=False)
        return order

    def load(self, index: int) -> tuple[int, torch.Tensor]:
        """Decoded row `index`, or the next good row if it cannot be read (logged once)."""
        for k in range(len(self.rows)):
            i = (index + k) % len(self.rows)
            if i in self._bad:
                continue
            if i in self._cache:
                self._cache.move_to_end(i)
                return i, self._cache[i]
            try:
                data = self.reader(self.rows[i].path)
            except (AudioReadError, ModelError, OSError, ValueError, RuntimeError) as e:
                logger.warning(
                    "%s: cannot read %s (%s); row skipped", self.rows[i].where, self.rows[i].path, e
                )
                self._bad.add(i)
                continue
            size = data.numel() * data.element_size()
            if self._cache_items and size <= self._cache_bytes:
                self._cache[i] = data
                self._cached_bytes += size
                while len(self._cache) > self._cache_items or self._cached_bytes > self._cache_bytes:
                    _, old = self._cache.popitem(last=False)
                    self._cached_bytes -= old.numel() * old.element_size()
            return i, data
        raise AudioReadError(f"none of the {len(self.rows)} manifest rows could be read")

    def crop(self, data: torch.Tensor, gen: torch.Generator, random: bool = True) -> torch.Tensor:
        """A `segment`-long window along the last-but-one (latent) or last (audio) time axis, zero-padded."""
        axis = -2 if data.dim() == 3 else -1
        size = self.segment if axis == -1 else self.latent_segment
        if size is None:
            raise UsageError("this stage trains on audio: latent files are only accepted by `train ldm`")
        length = data.shape[axis]
        if length > size:
            span = length - size
            if not random:
                start = span // 2
            elif self.start_crop and float(torch.rand((), generator=gen)) < self.start_crop:
                start = 0
            else:
                start = int(torch.randint(0, span + 1, (1,), generator=gen))
            return data.narrow(axis, start, size)
        if axis == -2 and self.latent_pad is not None:  # [C, T, F]: the latent of silence after the clip
            filler = self.latent_pad.to(data.dtype)[:, None, :].expand(-1, size - length, -1)
            return torch.cat([data, filler], dim=1)
        pad = [0, 0] * (-axis - 1) + [0, size - length]
        return torch.nn.functional.pad(data, pad)

    def sample(
        self, step: int, position: int, batch_size: int, *, train: bool = True
    ) -> tuple[torch.Tensor, str]:
        """(segment, caption) of one position of one global batch."""
        gen = sample_generator(self.seed, step, position)
        index = self.row_index(step, position, batch_size) if train else position % len(self.rows)
        index, data = self.load(index)
        segment = self.crop(data, gen, random=train)
        row = self.rows[index]
        caption = row.caption
        drop = float(torch.rand((), generator=gen)) < self.caption_dropout
        options = row.options
        if train and len(options) > 1:  # drawn last: rows with one caption draw exactly as before
            caption = options[int(torch.randint(0, len(options), (1,), generator=gen))]
        return segment, ("" if (train and drop) else caption)

    def batch(self, step: int, positions: Sequence[int], batch_size: int, *, train: bool = True) -> dict:
        """A batch {"audio" or "latent": [b, ...], "caption": [str]} for the given global positions."""
        samples = [self.sample(step, p, batch_size, train=train) for p in positions]
        key = "latent" if samples[0][0].dim() == 3 else "audio"
        if len({s[0].dim() for s in samples}) > 1:
            raise UsageError("the manifest mixes audio files and latent files: use one kind per run")
        return {key: torch.stack([s[0] for s in samples]), "caption": [s[1] for s in samples]}


def local_positions(batch_size: int, rank: int, world: int) -> range:
    """The contiguous share of a global batch that process `rank` of `world` computes."""
    if batch_size % world:
        raise UsageError(f"must be a multiple of the {world} processes", batch_size=batch_size)
    per = batch_size // world
    return range(rank * per, (rank + 1) * per)


def segment_samples(seconds: float, sample_rate: int, multiple: int = 1) -> int:
    """Samples in a segment of `seconds`, rounded up to a multiple of `multiple` samples."""
    if not seconds > 0:
        raise UsageError(f"segment_seconds {seconds}: must be > 0")
    return int(math.ceil(seconds * sample_rate / multiple) * multiple)
