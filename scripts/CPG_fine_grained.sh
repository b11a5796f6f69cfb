#!/usr/bin/env bash
# CPG's fine-grained protocol: an ImageNet-pretrained ResNet-50 (task 1 "imagenet", torchvision's weights),
# then CUBS-200, Stanford Cars, Oxford Flowers, WikiArt and Sketch, each an image folder decoded once to a
# 256-pixel short side and trained on 224-pixel random-resized crops (ImageNet normalisation). METHODS
# (default "cpg packnet piggyback") run one after another on the same sequence, each ending with its
# summary.json. Settings follow the reference's experiment2 scripts: finetune lr 1e-3 (Stanford Cars 1e-2),
# lr_mask 1e-4, pruning lr 1e-3 over 20-epoch stages at pruning frequency 50, weight decay 4e-5, 300
# finetune epochs for CPG and PackNet, 100 for Piggyback.
#
# usage: scripts/CPG_fine_grained.sh [gpu ids: 0, or 0,1,2,3 for one DDP stage over four GPUs; none: DEVICE's]
# data: $DATA_ROOT/fine_grained/<task>/{train,test}/<class>/*.jpg for the tasks below, and torchvision's
#   resnet50-0676ba61.pth (ResNet50_Weights.IMAGENET1K_V1) at $PRETRAINED (default $DATA_ROOT/resnet50-0676ba61.pth)
# environment: METHODS, TASKS (folder names, in order), ARCH (resnet50), SHORT_SIDE (256), CROP (224), GOALS
#   (accuracy goals for CPG; without them CPG stops with how to make them), MAX_WIDTH (1.5), FINETUNE_EPOCHS,
#   PIGGYBACK_EPOCHS, PRUNE_EPOCHS, RETRAIN_EPOCHS, BATCH_SIZE (32), NUM_TASKS, DATA_ROOT, CKPT_ROOT, SPEED_FLAGS,
#   EXPERIMENT (fine_grained: the runs are $CKPT_ROOT/<CPG|PackNet|Piggyback>/<EXPERIMENT>/imagenet_pretrained_seed1/)
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -le 1 ]] || usage_error "usage: $0 [gpu ids, e.g. 0 or 0,1,2,3]"
[[ ${1-0} =~ ^[0-9]+(,[0-9]+)*$ ]] || usage_error "GPU ids must be numbers like 0 or 0,1,2,3, got '$1'"
require_commands jq "$PYTHON"
resolve_roots
read -r -a tasks <<< "${TASKS:-cubs_cropped stanford_cars_cropped flowers wikiart sketches}"
images="$DATA_ROOT/fine_grained"
for task in "${tasks[@]}"; do
  [[ -d $images/$task/train && -d $images/$task/test ]] ||
    usage_error "no $images/$task/{train,test}/<class>/ image folders: put the $task images there"
done
PRETRAINED=$(realpath -m "${PRETRAINED:-$DATA_ROOT/resnet50-0676ba61.pth}")
[[ -f $PRETRAINED ]] || usage_error "no pretrained backbone at $PRETRAINED: put torchvision's ImageNet state dict there"
export PRETRAINED ARCH=${ARCH:-resnet50}
if [[ ${1:-} == *,* ]]; then export GPUS=$1 && use_gpus; else select_gpu "${1:-}"; fi

# the benchmark spec (utils/data/spec.py): the task folders in order, large images, ImageNet statistics
SPEC="$CKPT_ROOT/fine_grained/spec.json"
mkdir -p "$(dirname "$SPEC")"
jq -n --arg images "$images" --arg arch "$ARCH" --argjson short "${SHORT_SIDE:-256}" --argjson crop "${CROP:-224}" \
  '{images: $images, tasks: $ARGS.positional, channels: 3, arch: $arch, flip: true,
    large: {short_side: $short, crop: $crop},
    normalise: {mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}}' --args "${tasks[@]}" > "$SPEC.tmp"
mv "$SPEC.tmp" "$SPEC"

# the reference's per-task finetune learning rates: 1e-3, and 1e-2 for Stanford Cars
lrs=()
for task in "${tasks[@]}"; do
  if [[ $task == stanford_cars* ]]; then lrs+=(1e-2); else lrs+=(1e-3); fi
done
export LRS="${lrs[*]}" LR_MASK=${LR_MASK:-1e-4} PRUNE_LR=${PRUNE_LR:-1e-3} PRUNING_FREQUENCY=${PRUNING_FREQUENCY:-50}
export WEIGHT_DECAY=${WEIGHT_DECAY:-4e-5} EXPERIMENT=${EXPERIMENT:-fine_grained}

for method in ${METHODS:-cpg packnet piggyback}; do
  say "$method on ${tasks[*]}"
  case $method in
    cpg | packnet)
      METHOD=$method FINETUNE_EPOCHS=${FINETUNE_EPOCHS:-300} bash "$REPO_ROOT/scripts/cpg.sh" "$SPEC" \
        imagenet_pretrained "${MAX_WIDTH:-1.5}" ;;
    piggyback)
      EPOCHS=${PIGGYBACK_EPOCHS:-100} LR=1e-3 bash "$REPO_ROOT/scripts/piggyback.sh" "$SPEC" imagenet_pretrained ;;
    *) usage_error "METHODS may hold cpg, packnet and piggyback, got $method" ;;
  esac
done
