"""Manifest of the upstream archives of the translation recipes (stage 1).

Every archive lands in the recipe's ``--downloads DIR`` under its upstream file
name (``Archive.name``).  Several WMT years publish different files under the
same name (``dev.tgz``, ``test.tgz``), so give each setting its own downloads
directory; a wrong year's file is caught by its checksum.

Checksums are those published by a third party that downloaded the same URL:
TensorFlow Datasets' ``url_checksums/*.txt`` (size and sha256) and sacrebleu's
dataset table (md5).  ``source`` names where each value comes from; ``None``
means no public checksum was found (never invented).

``select(setting, downloads)`` says which archives a run needs: for
``wmt16_en_de`` Google's preprocessed tarball when it is present, else the raw
WMT16 corpora.  ``optional`` archives are not read by the pipeline and are
fetched only when named with ``fetch.py --only``.

``cnn_dailymail`` (summarisation, recipes/common/summarize_prepare.py) needs
the two story archives and See et al.'s three URL lists, which decide the split.

``gbw_lm`` and ``wikitext103_lm`` (language modelling, recipes/common/lm.sh)
need one archive each: the One Billion Word r13output tarball and
``wikitext-103-v1.zip``.

``PRETRAINED`` lists the archives of the models released by Wu et al. (2019)
and their binarised test sets; ``RELEASES`` says, per fairseq hub name, which
setting and --model each model belongs to and which archives it needs
(``fetch.py --pretrained NAME``, ``run.sh --pretrained NAME``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

TFDS = "tensorflow_datasets url_checksums/{}.txt"
SACREBLEU = "sacrebleu dataset table ({}), md5"
NO_CHECKSUM = "no public checksum found"


@dataclasses.dataclass(frozen=True)
class Archive:
    name: str
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    manual: bool = False  # never downloaded by fetch.py (registration, dead link)
    how_to_get: str = ""
    source: str = NO_CHECKSUM

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(algorithm, hex digest) of the strongest known checksum, or None."""
        if self.sha256:
            return "sha256", self.sha256
        if self.md5:
            return "md5", self.md5
        return None


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    needed: tuple[str, ...]
    # Used instead of `needed` when every one of them is present (wmt16_en_de).
    preferred: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Selection:
    route: str  # "raw", or "preferred" when the preferred archives are used
    required: tuple[Archive, ...]
    optional: tuple[Archive, ...]


def _statmt(path: str, size: int, sha256: str, tfds_file: str) -> Archive:
    return Archive(
        name=path.rsplit("/", 1)[-1],
        url=f"https://www.statmt.org/{path}",
        size=size,
        sha256=sha256,
        source=TFDS.format(tfds_file),
    )


def _cwmt(name: str, size: int, sha256: str) -> Archive:
    # Distributed by the CWMT organisers on an anonymous-login FTP server for
    # WMT17 participants; it may no longer answer.
    return Archive(
        name=f"{name}.zip",
        url=f"ftp://cwmt-wmt:cwmt-wmt@nlp.nju.edu.cn/parallel/{name}.zip",
        size=size,
        sha256=sha256,
        how_to_get=(
            f"CWMT corpus {name}.zip, distributed to WMT17 participants by the CWMT organisers "
            f"(ftp://cwmt-wmt:cwmt-wmt@nlp.nju.edu.cn/parallel/{name}.zip, see "
            "https://www.statmt.org/wmt17/translation-task.html); put it in the downloads directory"
        ),
        source=TFDS.format("wmt17_translate"),
    )


_A = [
    Archive(
        name="de-en.tgz",
        url="https://dl.fbaipublicfiles.com/fairseq/data/iwslt14/de-en.tgz",
        md5="10936dfdf616504ddbd844e91b94ef4a",
        source=(
            "a third-party download script (not the publisher), unconfirmed; "
            "size about 19.98 MB (DATA.md)"
        ),
    ),
    _statmt(
        "wmt13/training-parallel-europarl-v7.tgz", 657632379,
        "0224c7c710c8a063dfd893b0cc0830202d61f4c75c17eb8e31836103d27d96e7", "wmt16_translate",
    ),
    _statmt(
        "wmt13/training-parallel-commoncrawl.tgz", 918311367,
        "c7a74e2ea01ac6c920123108627e35278d4ccb5701e15428ffa34de86fa3a9e5", "wmt16_translate",
    ),
    _statmt(
        "wmt13/training-parallel-un.tgz", 2365634246,
        "29141b5c1eba149a94f7a59d3b1a834b2e47fe0f8758d68dcd77a3d3f497ee47", "wmt13_translate",
    ),
    _statmt(
        "wmt14/training-parallel-nc-v9.tgz", 80418416,
        "cb8953f292298e6877ae433c98912b927cb0766b303f4540512ddd286c748485", "wmt14_translate",
    ),
    _statmt(
        "wmt10/training-giga-fren.tar", 2595102720,
        "3ff8319f6919393520559bfbc7ad6a747ec81b3abc7be9993b338d4b017b4d9a", "wmt13_translate",
    ),
    Archive(
        name="test-full.tgz",
        url="https://www.statmt.org/wmt14/test-full.tgz",
        md5="a8cd784e006feb32ac6f3d9ec7eb389a",
        source=SACREBLEU.format("wmt14/full"),
    ),
    Archive(
        name="training-parallel-nc-v11.tgz",
        url="https://data.statmt.org/wmt16/translation-task/training-parallel-nc-v11.tgz",
        size=75178032,
        sha256="cfe8ab047e05043476e498ee765c98e939c7b7d6d294e856344c84476b619d6a",
        source=TFDS.format("wmt16_translate"),
    ),
    Archive(
        name="training-parallel-nc-v12.tgz",
        url="https://data.statmt.org/wmt17/translation-task/training-parallel-nc-v12.tgz",
        size=168591139,
        sha256="2b45f30ef1d550d302fd17dd3a5cbe19134ccc4c2cf50c2dae534aee600101a2",
        source=TFDS.format("wmt17_translate"),
    ),
    Archive(
        name="wmt16_en_de.tar.gz",
        url="https://drive.google.com/uc?export=download&id=0B_bZck-ksdkpM25jRUN2X2UxMm8",
        md5="874ab6bbfe9c21ec987ed1b9347f95ec",
        manual=True,
        how_to_get=(
            "wmt16_en_de.tar.gz: Google's preprocessed WMT16 En-De (tensorflow/nmt's "
            "wmt16_en_de.sh output, about 502 MB); its Google Drive link no longer works. "
            "If you have a copy, put it in the downloads directory and the recipe uses it; "
            "otherwise the recipe rebuilds it from the raw WMT16 corpora"
        ),
        source="DATA.md (md5); size not published",
    ),
    Archive(
        name="UNv1.0.en-zh.tar.gz",
        url="https://conferences.unite.un.org/uncorpus",
        size=1386685703,
        sha256="6f9c6401d5f0a49b20661324570d99fb86822d82f974748a361e19b9b886dd49",
        manual=True,
        how_to_get=(
            "UNv1.0.en-zh.tar.gz: the United Nations Parallel Corpus v1.0, English-Chinese, from "
            "https://conferences.unite.un.org/uncorpus (registration); put it in the downloads "
            "directory (if it comes in parts UNv1.0.en-zh.tar.gz.00, .01, ..., put the parts "
            "there, or join them with cat)"
        ),
        source=TFDS.format("wmt17_translate") + " (checksum of the same file on the TFDS mirror)",
    ),
    _cwmt("casia2015", 98159063, "c939f1528f96c419e9bbffb9caad869616a969e7704ffac896e245a02aff59a9"),
    _cwmt("casict2011", 166957775, "606adc0ccc5d8fc7c47f8589991286616342a1a379a571ce3038918731ae0182"),
    _cwmt("casict2015", 106836569, "eef8e25b297c1aff12ab24719247d3588e756d7a4e2c30d4d34fcb4d05ab1050"),
    _cwmt("datum2015", 100118018, "654afce6731485c40ce856514ab80cd2bfd836126bcaf48cdb911ebc32b021a4"),
    _cwmt("datum2017", 99278067, "737455c139596f4abf3b1da73bc38932b3ef9534549328eff47d867e29950ed2"),
    _cwmt("neu2017", 148681171, "9f63020b6990cde85f5387b745e3ae37f1d6a49848b90a49bae28219fb65395f"),
]

# CNN-DailyMail.  TFDS lists (size, sha256) of the stories behind their Google
# Drive links; a plain HTTP client gets an HTML confirmation page there
# instead of the file, so the copy that Hugging Face's loader downloads (by
# plain GET, pinned to a commit) is used, checked against the Drive file's
# checksums: if the copy ever differs, stage 1 says so and keeps it as .bad.
_CNNDM_HF = "https://huggingface.co/datasets/cnn_dailymail/resolve/11343c3752184397d56efc19a8a7cceb68089318/data/"
_CNNDM_DRIVE = "https://drive.google.com/uc?export=download&id="
_CNNDM_LISTS = "https://raw.githubusercontent.com/abisee/cnn-dailymail/master/url_lists/"


def _cnndm_stories(name: str, drive_id: str, size: int, sha256: str) -> Archive:
    return Archive(
        name=name, url=_CNNDM_HF + name, size=size, sha256=sha256,
        source=TFDS.format("cnn_dailymail") + f" (of the original {_CNNDM_DRIVE}{drive_id}, "
               "which Hugging Face's copy is taken to be; torchtext's cnndm.py has its md5)",
    )


def _cnndm_list(name: str, size: int, sha256: str) -> Archive:
    # Read from the repository's master branch: TFDS's checksums pin the lists
    # as they were when recorded, so a later edit of a list stops stage 1
    # instead of silently changing the split.
    return Archive(name=name, url=_CNNDM_LISTS + name, size=size, sha256=sha256,
                   source=TFDS.format("cnn_dailymail"))


_A += [
    _cnndm_stories("cnn_stories.tgz", "0BwmD_VLjROrfTHk4NFg2SndKcjQ", 158577824,
                   "e8fbc0027e54e0a916abd9c969eb35f708ed1467d7ef4e3b17a56739d65cb200"),
    _cnndm_stories("dailymail_stories.tgz", "0BwmD_VLjROrfM1BxdkxVaTY2bWs", 375893739,
                   "ad69010002210b7c406718248ee66e65868b9f6820f163aa966369878d14147e"),
    _cnndm_list("all_train.txt", 46424688,
                "a5cee49f3a6c862c26ce29308236d2a99625ab6c86a43be22d5206b2790d8029"),
    _cnndm_list("all_val.txt", 2433674,
                "81887e982b045083409c6ee838aede8ff4b97291605bcfb21bffc456a16991db"),
    _cnndm_list("all_test.txt", 2109547,
                "c4f5efb5ec2126430a5c156efbd13d0e9c4cb490169e552c38b4a51981a009bd"),
]
# Language modelling (recipes/common/lm_prepare.py).  The WikiText-103 zip's
# original S3 address now refuses requests; the mirror is taken to serve the
# same file, which its md5 (torchtext's, of the S3 file) checks.
GBW_ARCHIVE = "1-billion-word-language-modeling-benchmark-r13output.tar.gz"
WIKITEXT103_ARCHIVE = "wikitext-103-v1.zip"
_A += [
    Archive(
        name=GBW_ARCHIVE,
        url=f"https://www.statmt.org/lm-benchmark/{GBW_ARCHIVE}",
        size=1792209805,
        sha256="01ba60381110baf7f189dfd2b8374de371e8c9a340835793f190bdae9e90a34e",
        source=TFDS.format("lm1b"),
    ),
    Archive(
        name=WIKITEXT103_ARCHIVE,
        url=f"https://wikitext.smerity.com/{WIKITEXT103_ARCHIVE}",
        md5="9ddaacaf6af0710eda8c456decff7832",
        source="torchtext's WikiText103 (md5 of the original "
               "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-v1.zip); "
               "size not published",
    ),
]
_BY_NAME = {a.name: a for a in _A}

# dev.tgz / test.tgz differ per year: kept out of _BY_NAME, one per setting.
_YEARLY = {
    "wmt14_en_fr": {
        "dev.tgz": Archive(
            name="dev.tgz",
            url="https://www.statmt.org/wmt14/dev.tgz",
            source=NO_CHECKSUM + " (neither TFDS nor sacrebleu lists the WMT14 dev.tgz)",
        ),
    },
    "wmt16_en_de": {
        "dev.tgz": Archive(
            name="dev.tgz",
            url="https://data.statmt.org/wmt16/translation-task/dev.tgz",
            md5="4a3dc2760bb077f4308cce96b06e6af6",
            source=SACREBLEU.format("wmt16/dev"),
        ),
        "test.tgz": Archive(
            name="test.tgz",
            url="https://data.statmt.org/wmt16/translation-task/test.tgz",
            md5="3d809cd0c2c86adb2c67034d15c4e446",
            source=SACREBLEU.format("wmt16"),
        ),
    },
    "wmt17_zh_en": {
        "dev.tgz": Archive(
            name="dev.tgz",
            url="https://data.statmt.org/wmt17/translation-task/dev.tgz",
            md5="9b1aa63c1cf49dccdd20b962fe313989",
            source=SACREBLEU.format("wmt17/dev"),
        ),
        "test.tgz": Archive(
            name="test.tgz",
            url="https://data.statmt.org/wmt17/translation-task/test.tgz",
            md5="86a1724c276004aa25455ae2a04cef26",
            source=SACREBLEU.format("wmt17"),
        ),
    },
}

CWMT = ("casia2015.zip", "casict2011.zip", "casict2015.zip", "datum2015.zip",
        "datum2017.zip", "neu2017.zip")

SETTINGS = {
    "iwslt14_de_en": Setting("iwslt14_de_en", needed=("de-en.tgz",)),
    "wmt16_en_de": Setting(
        "wmt16_en_de",
        preferred=("wmt16_en_de.tar.gz",),
        needed=("training-parallel-europarl-v7.tgz", "training-parallel-commoncrawl.tgz",
                "training-parallel-nc-v11.tgz", "dev.tgz", "test.tgz"),
    ),
    "wmt14_en_fr": Setting(
        "wmt14_en_fr",
        needed=("training-parallel-europarl-v7.tgz", "training-parallel-commoncrawl.tgz",
                "training-parallel-un.tgz", "training-parallel-nc-v9.tgz",
                "training-giga-fren.tar", "test-full.tgz"),
        # fairseq's pipeline takes its valid set from the training data.
        optional=("dev.tgz",),
    ),
    "wmt17_zh_en": Setting(
        "wmt17_zh_en",
        needed=("training-parallel-nc-v12.tgz", "UNv1.0.en-zh.tar.gz", *CWMT,
                "dev.tgz", "test.tgz"),
    ),
    "cnn_dailymail": Setting(
        "cnn_dailymail",
        needed=("cnn_stories.tgz", "dailymail_stories.tgz", "all_train.txt", "all_val.txt",
                "all_test.txt"),
    ),
    "gbw_lm": Setting("gbw_lm", needed=(GBW_ARCHIVE,)),
    "wikitext103_lm": Setting("wikitext103_lm", needed=(WIKITEXT103_ARCHIVE,)),
}


def setting(name: str) -> Setting:
    if name not in SETTINGS:
        raise ValueError(f"unknown setting {name!r} (choose from: {', '.join(SETTINGS)})")
    return SETTINGS[name]


def archive(setting_name: str, name: str) -> Archive:
    """The archive called `name` as the setting `setting_name` uses it."""
    found = _YEARLY.get(setting_name, {}).get(name) or _BY_NAME.get(name)
    if found is None or name not in archive_names(setting_name):
        raise ValueError(f"setting {setting_name!r} has no archive {name!r} "
                         f"(it has: {', '.join(archive_names(setting_name))})")
    return found


def archive_names(setting_name: str) -> tuple[str, ...]:
    s = setting(setting_name)
    return s.preferred + s.needed + s.optional


def archives(setting_name: str) -> tuple[Archive, ...]:
    """Every archive the setting knows of, required or not."""
    return tuple(archive(setting_name, n) for n in archive_names(setting_name))


def select(setting_name: str, downloads: Path | str | None = None) -> Selection:
    """Which archives a run of the setting needs, given what `downloads` holds.

    The preferred archives (wmt16: Google's tarball) are used when all are
    present; the others are then optional.  Otherwise the raw set is required
    and the preferred archives are optional.
    """
    s = setting(setting_name)
    present = set()
    if downloads is not None and Path(downloads).is_dir():
        present = {p.name for p in Path(downloads).iterdir() if p.is_file()}
    get = lambda names: tuple(archive(setting_name, n) for n in names)  # noqa: E731
    if s.preferred and set(s.preferred) <= present:
        return Selection("preferred", get(s.preferred), get(s.needed + s.optional))
    return Selection("raw", get(s.needed), get(s.preferred + s.optional))


_MODELS = "https://dl.fbaipublicfiles.com/fairseq/models/dynamicconv/"
_TESTSETS = "https://dl.fbaipublicfiles.com/fairseq/data/"
_NO_MODEL_SUM = NO_CHECKSUM + " (fairseq's hub_models() lists the URL only)"

PRETRAINED = {
    name: Archive(name=name, url=base + name, source=_NO_MODEL_SUM)
    for base, names in (
        (_MODELS, (
            "iwslt14.de-en.lightconv.tar.gz",
            "iwslt14.de-en.dynamicconv.tar.gz",
            "wmt16.en-de.joined-dict.lightconv.tar.gz",
            "wmt16.en-de.joined-dict.dynamicconv.tar.gz",
            "wmt16.en-de.joined-dict.lightconv-glu.tar.gz",
            "wmt16.en-de.joined-dict.dynamicconv-glu.tar.gz",
            "wmt14.en-fr.joined-dict.lightconv-glu.tar.gz",
            "wmt14.en-fr.joined-dict.dynamicconv-glu.tar.gz",
            "wmt17.zh-en.lightconv-glu.tar.gz",
            "wmt17.zh-en.dynamicconv-glu.tar.gz",
        )),
        (_TESTSETS, (
            "iwslt14.de-en.test.tar.bz2",
            "wmt16.en-de.joined-dict.newstest2014.tar.bz2",
            "wmt14.en-fr.joined-dict.newstest2014.tar.bz2",
            "wmt17.zh-en.newstest2017.tar.bz2",
        )),
    )
    for name in names
}


@dataclasses.dataclass(frozen=True)
class Release:
    """A released model of Wu et al. (2019), under its fairseq hub name."""

    name: str
    setting: str
    model: str  # the recipe's --model that it is an instance of
    archive: str  # PRETRAINED key of the model archive
    test_set: str  # PRETRAINED key of the binarised test set made with its dictionaries
    # Whether the paper reports this very configuration (its WMT models have
    # GLUs, its IWSLT ones none): only then is the paper's number comparable.
    in_paper: bool = True
    # (archive of the setting, member): the raw reference SGM, for metrics on
    # detokenised text that the binarised test set cannot give.
    reference: tuple[str, str] | None = None


def _release(name, setting, archive, test_set, **kwargs) -> Release:
    model = {"lightconv": "lightweightconv", "dynamicconv": "dynamicconv"}[name.split(".", 1)[0]]
    return Release(name, setting, model, archive, test_set, **kwargs)


_ZH_EN_REF = ("test.tgz", "newstest2017-zhen-ref.en.sgm")
RELEASES = {r.name: r for r in (
    _release("lightconv.no_glu.iwslt14.de-en", "iwslt14_de_en",
             "iwslt14.de-en.lightconv.tar.gz", "iwslt14.de-en.test.tar.bz2"),
    _release("dynamicconv.no_glu.iwslt14.de-en", "iwslt14_de_en",
             "iwslt14.de-en.dynamicconv.tar.gz", "iwslt14.de-en.test.tar.bz2"),
    _release("lightconv.no_glu.wmt16.en-de", "wmt16_en_de", "wmt16.en-de.joined-dict.lightconv.tar.gz",
             "wmt16.en-de.joined-dict.newstest2014.tar.bz2", in_paper=False),
    _release("dynamicconv.no_glu.wmt16.en-de", "wmt16_en_de", "wmt16.en-de.joined-dict.dynamicconv.tar.gz",
             "wmt16.en-de.joined-dict.newstest2014.tar.bz2", in_paper=False),
    _release("lightconv.glu.wmt16.en-de", "wmt16_en_de", "wmt16.en-de.joined-dict.lightconv-glu.tar.gz",
             "wmt16.en-de.joined-dict.newstest2014.tar.bz2"),
    _release("dynamicconv.glu.wmt16.en-de", "wmt16_en_de", "wmt16.en-de.joined-dict.dynamicconv-glu.tar.gz",
             "wmt16.en-de.joined-dict.newstest2014.tar.bz2"),
    _release("lightconv.glu.wmt14.en-fr", "wmt14_en_fr", "wmt14.en-fr.joined-dict.lightconv-glu.tar.gz",
             "wmt14.en-fr.joined-dict.newstest2014.tar.bz2"),
    _release("dynamicconv.glu.wmt14.en-fr", "wmt14_en_fr", "wmt14.en-fr.joined-dict.dynamicconv-glu.tar.gz",
             "wmt14.en-fr.joined-dict.newstest2014.tar.bz2"),
    _release("lightconv.glu.wmt17.zh-en", "wmt17_zh_en", "wmt17.zh-en.lightconv-glu.tar.gz",
             "wmt17.zh-en.newstest2017.tar.bz2", reference=_ZH_EN_REF),
    _release("dynamicconv.glu.wmt17.zh-en", "wmt17_zh_en", "wmt17.zh-en.dynamicconv-glu.tar.gz",
             "wmt17.zh-en.newstest2017.tar.bz2", reference=_ZH_EN_REF),
)}


def release(setting_name: str, name: str) -> Release:
    """The released model `name` of the setting; ValueError (one line, listing the setting's) otherwise."""
    setting(setting_name)
    valid = [r.name for r in RELEASES.values() if r.setting == setting_name]
    found = RELEASES.get(name)
    if found is None or found.setting != setting_name:
        elsewhere = f" (a model of {found.setting})" if found else ""
        raise ValueError(f"--pretrained {name!r}: not a released model of {setting_name}{elsewhere}; "
                         f"valid names: {', '.join(valid)}")
    return found


def release_archives(rel: Release) -> tuple[Archive, ...]:
    """What a run of the released model needs: model, test set, and the raw reference's archive."""
    out = (PRETRAINED[rel.archive], PRETRAINED[rel.test_set])
    if rel.reference:
        out += (archive(rel.setting, rel.reference[0]),)
    return out
