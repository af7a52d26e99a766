# Continue from open_clip's ViT-B/16 trained on LAION-2B (`ViT-B-16`, pretrained
# 'laion2b_s34b_b88k') instead of OpenAI's: the recipe, data and schedule of the parent
# config; only the activation (GELU: open_clip's LAION models; its "-quickgelu" models and
# OpenAI-pretrained ones need quick_gelu) and the checkpoint differ. open_clip uses OpenAI's
# BPE vocabulary, so the tokenizer directory is the same (the parent's, or
#   CLIPTokenizer.from_pretrained('openai/clip-vit-base-patch16').save_pretrained(
#       'data/tokenizers/clip-vit-base-patch16')  in Python with transformers).
#   python tools/model_converters/clip_to_cllip.py open_clip_pytorch_model.bin \
#       checkpoints/clip_vit-b16_laion2b.pth --src-format open_clip
#   bash tools/dist_train.sh configs/cloc/<this file> 8
_base_ = ['./cloc_vit-b16_openai-clip-pre_8xb128-10k_coco-vg-grit.py']
clip_checkpoint = 'checkpoints/clip_vit-b16_laion2b.pth'

model = dict(
    image_encoder=dict(act='gelu'),
    text_encoder=dict(act='gelu'),
    init_cfg=dict(checkpoint=clip_checkpoint))
