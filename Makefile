# Entry points. Each target is one line calling the project's own CLI.
# DATA=<PoseTrack18-layout folder> switches any target from the embedded synthetic scenes to real data.
PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
EXPERIMENT ?= improved
SWEEP    ?= quick
ARGS     ?=
DATA     ?=
DATA_ARG := $(if $(DATA),data.root=$(DATA),)

export WANDB_MODE ?= offline
export WANDB_SILENT ?= true

PHONY_EXTRA := matcher-variants diagnose test-slow bench lint weights reproduce-paper
.PHONY: $(PHONY_EXTRA) install train test synth data-stats bench-tokenize tracker-comparison sweep ablation-tokens ablation-timesteps ablation-assignment ablation-threshold ablation-toks ablation-toks-yolo cost resolution-sweep install-yolo install-baselines track-video clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg constraints-cpu.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints-cpu.txt torch==2.13.0 -e '.[test]'
	$(BIN)/pip install --quiet -c constraints-cpu.txt scikit-learn jsonschema jsonref
	$(BIN)/pip install --quiet --no-deps -c constraints-cpu.txt sweeps==0.3.0   # declares numpy<2, works with 2.x
	touch $@

# The optional `yolo` extra (AGPL-3.0) in its own environment: it needs torchvision, and the only
# torch / torchvision pair that loads together on a CPU machine here is 2.14.1 / 0.29.1 (constraints-yolo.txt).
install-yolo: $(VENV)-yolo/.installed

$(VENV)-yolo/.installed: setup.cfg constraints-yolo.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)-yolo
	$(VENV)-yolo/bin/pip install --quiet --upgrade pip
	$(VENV)-yolo/bin/pip install --quiet -c constraints-yolo.txt torch==2.14.1 torchvision==0.29.1 -e '.[test,yolo]'
	touch $@

# The optional `baselines` extra (boxmot's motion trackers, AGPL-3.0) in its own environment, for the
# tracker comparison's practitioner rows: boxmot needs torchvision (the pair of constraints-baselines.txt).
# `make tracker-comparison` runs there once it is installed.
install-baselines: $(VENV)-baselines/.installed

$(VENV)-baselines/.installed: setup.cfg constraints-baselines.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)-baselines
	$(VENV)-baselines/bin/pip install --quiet --upgrade pip
	$(VENV)-baselines/bin/pip install --quiet -c constraints-baselines.txt torch==2.14.1 torchvision==0.29.1 -e '.[test,baselines]'
	touch $@

train: install
	$(BIN)/keytrack train experiment=$(EXPERIMENT) $(DATA_ARG) $(ARGS)

# The shipped matcher keytrack/weights/keytrack-synthetic.pt (keytrack.weights, `--checkpoint keytrack-synthetic`):
# the improved matcher trained on the synthetic default scenes with seed 0 (about 10 minutes on a CPU; a
# finished run is reused), its best checkpoint stripped to weights and config. Synthetic data only: no DATA.
weights: install
	$(BIN)/keytrack train experiment=improved seed=0 logging.wandb=false trainer.enable_progress_bar=false
	$(BIN)/keytrack export-weights runs/improved/synthetic-seed0 keytrack/weights/keytrack-synthetic.pt

# The fast tier (the README's test command; a few minutes here); test-slow: trainings, DDP, sweeps,
# end-to-end ablations (pytest -m slow); .ci/run runs both.
test: install
	$(BIN)/python -m pytest -q -m "not slow" $(if $(DATA),--data=$(DATA),) $(ARGS)

# ruff: lint and format check (line length 110, pyproject.toml); .ci/run runs it first.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-slow: install
	$(BIN)/python -m pytest -q -m slow $(if $(DATA),--data=$(DATA),) $(ARGS)

synth: install
	$(BIN)/keytrack synth --out data/synthetic --videos 40 --seed 0 $(ARGS)

data-stats: install
	$(BIN)/keytrack data-stats $(if $(DATA),--data=$(DATA),) $(ARGS)

bench-tokenize: install
	$(BIN)/keytrack bench-tokenize $(if $(DATA),--data $(DATA) --split $(or $(SPLIT),train),) --model $(ARGS)

# The ablation targets write under runs/ (runs/ablations/<name>[/<data>-<split>], runs/sweeps/<name>,
# runs/bench, runs/cost): the committed tables under results/ are never overwritten. To refresh one,
# pass its folder: make tracker-comparison ARGS="--out results/tracker_comparison".
tracker-comparison: install
	$(if $(wildcard $(VENV)-baselines/.installed),$(VENV)-baselines/bin,$(BIN))/keytrack ablate tracker_comparison $(if $(DATA),--data $(DATA),) $(ARGS)

matcher-variants: install
	$(BIN)/keytrack ablate matcher_variants $(if $(DATA),--data $(DATA),) $(ARGS)

# make diagnose CHECKPOINT=<ckpt> DATA=<PoseTrack18 folder> [SPLIT=test] [ARGS="--stride 4"] (INPUT= as DATA=)
diagnose: install
	$(BIN)/keytrack diagnose $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT),--scorer oks) --data $(or $(INPUT),$(DATA)) $(if $(SPLIT),--split $(SPLIT),) $(ARGS)

# committed copy: results/sweep_<name>/ (ARGS="--out results/sweep_$(SWEEP)" rewrites it)
sweep: install
	$(BIN)/keytrack ablate sweep $(SWEEP) $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-tokens: install
	$(BIN)/keytrack ablate tokens $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-timesteps: install
	$(BIN)/keytrack ablate timesteps $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-assignment: install
	$(BIN)/keytrack ablate assignment $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-threshold: install
	$(BIN)/keytrack ablate threshold $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-toks: install
	$(BIN)/keytrack ablate toks $(if $(DATA),--data $(DATA),) $(ARGS)

ablation-toks-yolo: install-yolo
	$(VENV)-yolo/bin/keytrack ablate toks --estimator yolo $(if $(DATA),--data $(DATA),) $(ARGS)

# The paper's model at the paper's budget (A.4: 25 epochs over every training pair), as one target: Figure 4's
# Pose Entailment row (experiment paper, 3 training seeds, strides 1 2 4, GT and predicted keypoints, beside
# tuned OKS), Table 3 (5 token schemes x 3 seeds), Figure 7 right (transformer vs CNN on keypoints at 12x9,
# 24x18, 48x36, 2 seeds, the converged budget: early stopping on val/rank1) and the learning curves of the
# Table 3 runs. Hours on a CPU; on a GPU: ARGS="--device cuda --train-override trainer.accelerator=gpu".
# Runs resume and finished ones are reused, so it may span several sittings (docs/ablations_paper.md).
PAPER_OUT ?= runs/reproduce_paper
reproduce-paper: install
	$(BIN)/keytrack ablate tracker_comparison --profile full --methods paper oks --strides 1 2 4 --settings gt_boxes_gt_keypoints predicted_boxes_predicted_keypoints --train-seeds 0 1 2 --out $(PAPER_OUT)/tracker_comparison $(if $(DATA),--data $(DATA),) $(ARGS)
	$(BIN)/keytrack ablate tokens --profile full --train-seeds 0 1 2 --out $(PAPER_OUT)/tokens $(if $(DATA),--data $(DATA),) $(ARGS)
	$(BIN)/keytrack ablate resolution_sweep 'train.only=[transformer,cnn_keypoints]' 'train.each.resolution.full=[[12,9],[24,18],[48,36]]' --profile full --train-seeds 0 1 --out $(PAPER_OUT)/resolution_sweep $(if $(DATA),--data $(DATA),) $(ARGS)
	$(BIN)/keytrack learning-curve runs/tokens_*/*-full-*-seed* --out $(PAPER_OUT)/learning_curve

# make bench [ARGS="--device cuda --bf16"] [DATA=...]: the machine's roofline, the matcher, keytrack train's step, the tracker
bench: install
	$(BIN)/keytrack bench --experiment $(EXPERIMENT) $(if $(DATA),--data $(DATA),) $(ARGS)

# committed copy: results/cost/ (ARGS="--out results/cost" rewrites it)
cost: install
	$(BIN)/keytrack cost $(ARGS)

resolution-sweep: install
	$(BIN)/keytrack ablate resolution_sweep $(if $(DATA),--data $(DATA),) $(ARGS)

track-video: install-yolo
	$(VENV)-yolo/bin/keytrack track-video $(VIDEO) --out $(or $(OUT),runs/video) --threads 1 $(ARGS)

clean:
	rm -rf runs wandb lightning_logs .pytest_cache
