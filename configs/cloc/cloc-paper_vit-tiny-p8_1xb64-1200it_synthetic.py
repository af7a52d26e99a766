# CLOC as the paper specifies it (docs/method.md marks each choice [paper] / [paper?]), on the
# embedded demo set at the demo's size and budget (ViT 4 x 128 at 96 px, 1200 iterations of
# batch 64; the schedule is the demo's, not Table A's 439k steps of batch 32k):
# - the paper's Prompter: box corners as 2 sine tokens prepended to the ViT's output tokens,
#   one single-head transformer encoder layer, its own average pool and projection (sec. 3.3);
# - grounding: the phrase's text embedding as the prompt, a 2-layer GELU MLP on the corners,
#   L2 loss (sec. 3.4, eq. 3);
# - negatives filtered at text cosine 0.9 (sec. 3.4); one lambda = the fraction of images
#   with region text (eq. 4, Table A); M = 4 regions per image (Table A); the region loss
#   shares CLIP's temperature (eq. 2 writes the same tau: [paper?]);
# - data: long-side resize with centred padding, no other augmentation; T5-style
#   SentencePiece tokenizer, lowercased (Table A; the demo's is trained on the demo corpus).
#   python tools/run_demo.py --recipe paper
_base_ = ['./cloc_vit-tiny-p8_1xb64-1200it_synthetic.py']

width = 128
model = dict(
    tokenizer=dict(_delete_=True, type='SentencePieceTokenizer', path='data/cloc_demo/tokenizer_t5',
                   context_length=40, lowercase=True),
    prompter=dict(_delete_=True, type='ClocPrompter', width=width, embed_dim={{_base_.embed_dim}},
                  heads=1, corner_tokens=2, pool='all'),
    grounding_head=dict(_delete_=True, type='ClocGroundingHead', embed_dim={{_base_.embed_dim}}),
    region_loss=dict(type='RegionTextContrastiveLoss', share_logit_scale=True,
                     text_filter_threshold=0.9),
    grounding_loss=None,
    region_loss_weighting='image_fraction')

train_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size={{_base_.img_size}}),
    dict(type='SampleRegions', max_regions=4),
    dict(type='PackRegionTextInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFileChecked'),
    dict(type='ResizeWithPad', size={{_base_.test_img_size}}),
    dict(type='PackRegionTextInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
