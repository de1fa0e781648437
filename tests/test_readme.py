from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv .venv")]
    assert len(commands) == 2, "the README starts with exactly two set-up commands"
    assert commands[1] in ci.splitlines()
    assert "-m ebyd_hf.demo" in commands[0]


def test_import_is_light():
    import subprocess
    import sys

    code = (
        "import sys, ebyd_hf; print(any(m.startswith(('torch', 'transformers', 'OpenAttack')) for m in sys.modules))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )
