#!/bin/bash
# RoboTwin 2.0 evaluation of Evo-1 through `evo1 serve` (run from RoboTwin/policy/evo1/).
#   bash eval.sh <task_name> <task_config> <ckpt_setting> <seed> <gpu_id>
#   e.g. bash eval.sh place_empty_cup demo_clean evo1 0 0
policy_name=evo1
task_name=${1}
task_config=${2}
ckpt_setting=${3}
seed=${4}
gpu_id=${5}

export CUDA_VISIBLE_DEVICES=${gpu_id}
echo -e "\033[33mgpu id (to use): ${gpu_id}\033[0m"

cd ../.. # to the RoboTwin root

PYTHONWARNINGS=ignore::UserWarning \
python script/eval_policy.py --config policy/$policy_name/deploy_policy.yml \
    --overrides \
    --task_name ${task_name} \
    --task_config ${task_config} \
    --ckpt_setting ${ckpt_setting} \
    --seed ${seed} \
    --policy_name ${policy_name}
