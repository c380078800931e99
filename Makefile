# Two commands do all the set-up:  `make demo`  and  `make test`.
PY      ?= python3
VENV    ?= .venv
BIN      = $(VENV)/bin
STAMP    = $(VENV)/.installed
APT_PKGS = fluidsynth fluid-soundfont-gm abcmidi abcm2ps lilypond chromium chromium-driver

.PHONY: demo test bench base system venv clean

# Debian tools for audio, ABC reference conversion, engraving and the browser tests.
# Installed only where missing; skipped (with a notice) when not root.
system:
	@missing=""; for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else echo "notice: missing Debian packages:$$missing (run 'sudo make system'); falling back where possible"; fi; \
	fi

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# The demo: Bach chorales in MidiTok's TSD tokens (the model writes the rhythm, chords sound as chords),
# trained on every chorale also transposed a semitone up and down; samples, their audio and piano
# rolls; and a listening page beside the n-gram sampler and the real continuation.
demo: system venv
	$(BIN)/python cli.py extract --name demo
	$(BIN)/python cli.py train --data processed/demo --encoding tsd --transpose 1 --stride 30 --cell gru --layers 2 --hidden 128 --epochs 10 --max-minutes 4 --name demo-tsd-gru --resume
	$(BIN)/python cli.py generate --run runs/demo-tsd-gru --count 4 --length 400 --temperature 0.8,1
	$(BIN)/python cli.py render runs/demo-tsd-gru/samples/t0.8-s0 runs/demo-tsd-gru/samples/t1-s0
	$(BIN)/python cli.py compare runs/demo-tsd-gru --temperature 0.8,1 --count 2 --length 400 --out runs/demo-compare

test: system venv
	$(BIN)/python -m pytest

# Every benchmark in bench/, each bounded to a few minutes (the list: bench/run_all.sh).
# A frames base of more music (no Chopin: JSB Chorales, Nottingham, MuseData training pieces; docs/bench/finetune.md)
# to fine-tune on your own files: python cli.py train --data processed/<yours> --init-from runs/base
POLY ?= ../shared/data/polyphonic
base: system venv
	$(BIN)/python cli.py extract $(POLY)/jsb-chorales.mat $(POLY)/nottingham.mat $(POLY)/musedata.mat --name base
	$(BIN)/python cli.py train --data processed/base --encoding frames --max-minutes 40 --name base --resume

bench: system venv
	PYTHON=$(BIN)/python bench/run_all.sh

clean:
	rm -rf processed runs raw_midi/bach-chorales
