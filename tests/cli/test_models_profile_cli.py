"""``edgenext models`` and ``edgenext profile`` through the CLI entry point."""

import json
import subprocess
import sys

from edgenext.cli.main import SUBCOMMANDS, build_parser, main
from edgenext.constants import PAPER_PARAMS


def test_profile_json_matches_the_paper(capsys):
    assert main(["profile", "--model", "edgenext_xx_small_bn_hs", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["params"] == PAPER_PARAMS["edgenext_xx_small_bn_hs"] and row["params_match"]
    assert abs(row["madds_diff_pct"]) < 1.0


def test_profile_table_non_square(capsys):
    assert main(["profile", "--model", "edgenext_xx_small", "--input-size", "224", "320"]) == 0
    out = capsys.readouterr().out
    assert "edgenext_xx_small" in out and "1,327,216" in out


def test_profile_unknown_model_is_a_clear_error(capsys):
    assert main(["profile", "--model", "edgenext_tiny"]) == 2
    assert "unknown model 'edgenext_tiny'" in capsys.readouterr().err


def test_models_lists_variants_and_releases(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == sorted(PAPER_PARAMS)
    base = next(r for r in rows if r["name"] == "edgenext_base")
    assert {r["name"] for r in base["releases"]} == {"edgenext_base.in1k", "edgenext_base.usi", "edgenext_base.in21k_ft_in1k"}
    assert all(r["params"] == PAPER_PARAMS[r["name"]] for r in rows)


def test_console_script_help_lists_every_command_without_the_image_pipelines_imports():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "edgenext", "--help"], capture_output=True, text=True,
                          check=True)
    assert all(name in done.stdout for name in SUBCOMMANDS)
    # torchvision and timm come with the data pipeline (seconds on a small CPU): the help and the parsers need neither
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "torch" in imported and not {"torchvision", "timm"} & imported


def test_a_command_line_imports_only_its_subcommand_and_supervise_needs_no_pytorch():
    # the supervisor is one process per node beside torchrun: it starts in a fraction of a second
    code = ("import sys; from edgenext.cli.main import main; "
            "rc = main(['supervise', '--retries', '0', '--', sys.executable, '-c', 'pass']); "
            "print(rc, 'torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('edgenext.cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split(maxsplit=2)
    assert out[:2] == ["0", "False"] and out[2].strip() == "['edgenext.cli.main', 'edgenext.cli.supervise']"
    # a parser with the named subcommand alone parses its command lines as the full one does
    argv = ["-v", "profile", "--model", "edgenext_small", "--json"]
    assert vars(build_parser("profile").parse_args(argv)) == vars(build_parser().parse_args(argv))
