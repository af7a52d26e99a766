# Continue from OpenAI's CLIP ViT-B/16 at 224 px on a COCO + Visual Genome + GRIT mix:
# CLOC's region-text and grounding losses added to the CLIP loss, bf16 autocast, 8 GPUs x
# 128 images, 10k iterations, validated on COCO val2017 (region classification over the 80
# categories, image-text retrieval, grounding) every 2k. [ours] The paper trains from
# scratch; this recipe is ours (docs/interoperability.md).
#
# 1. Data (docs/datasets.md "Dataset by dataset"): under data/ (a symlink will do; or set
#    data_root in configs/_base_/datasets/region_text_mix_224.py):
#      data/coco/train2017/, val2017/, annotations/coco2017_{train,val}_caption_vg.jsonl
#        (tools/dataset_converters/coco_caption2odvg.py on captions_* + instances_*)
#      data/vg/VG_100K*/, annotations/vg_regions_vg.jsonl   (tools/dataset_converters/vg2odvg.py)
#      data/grit/images/, grit20m_vg.json                     (tools/dataset_converters/grit_to_odvg.py)
# 2. Weights and tokenizer (Hugging Face openai/clip-vit-base-patch16, downloaded by you):
#      python tools/model_converters/clip_to_cllip.py checkpoints/clip-vit-base-patch16 \
#          checkpoints/clip_vit-b16_openai.pth --src-format hf \
#          --tokenizer-out data/tokenizers/clip-vit-base-patch16
#    (OpenAI's ViT-B-16.pt works too: --src-format openai, plus a CLIPTokenizer directory.)
# 3. Train: bash tools/dist_train.sh configs/cloc/<this file> 8
#    (another batch: --cfg-options train_dataloader.batch_size=64 --auto-scale-lr)
_base_ = [
    '../_base_/models/cloc_vit-b16.py',
    '../_base_/datasets/region_text_mix_224.py',
    '../_base_/schedules/schedule_clip-pre_10k_adamw-bf16.py',
    '../_base_/default_runtime.py',
]
clip_checkpoint = 'checkpoints/clip_vit-b16_openai.pth'
tokenizer_path = 'data/tokenizers/clip-vit-base-patch16'

model = dict(
    # What clip_to_cllip.py prints for OpenAI's weights: QuickGELU, a 49408-token BPE
    # vocabulary, and pooling at the argmax id (EOT, 49407, is the largest id).
    image_encoder=dict(act='quick_gelu'),
    text_encoder=dict(act='quick_gelu', vocab_size=49408, eot_token_id=None),
    tokenizer=dict(path=tokenizer_path),
    # Loads image_encoder.*, text_encoder.* and clip_loss.logit_scale; the Prompter,
    # grounding head and region loss start fresh (listed as missing keys in the log).
    init_cfg=dict(type='Pretrained', checkpoint=clip_checkpoint))

train_dataloader = dict(batch_size=128)
default_hooks = dict(checkpoint=dict(interval=2_000, max_keep_ckpts=3))
auto_scale_lr = dict(base_batch_size=8 * 128)
