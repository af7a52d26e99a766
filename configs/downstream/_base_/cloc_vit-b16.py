# The CLOC ViT-B/16 encoders of configs/_base_/models/cloc_vit-b16.py (CLIP sizes: 224 px,
# width 768 / 12 blocks; text width 512, 12 blocks, context 77) as mmdet components, for
# the downstream configs.
# `cloc_checkpoint`: the output of tools/model_converters/cllip_to_mmdet.py; `cloc_tokenizer`:
# the tokenizer the encoders were pretrained with. Set them with the environment variables
# CLOC_CHECKPOINT / CLOC_TOKENIZER, or with --cfg-options on
# model.backbone.init_cfg.checkpoint and model.language_model.init_cfg.checkpoint.
cloc_checkpoint = '{{$CLOC_CHECKPOINT:work_dirs/cloc_vit-b16/cloc_mmdet.pth}}'
cloc_tokenizer = '{{$CLOC_TOKENIZER:data/tokenizers/clip}}'

# CLIP's mean / std on the 0-255 scale (docs/method.md, section 2); pipelines carry BGR.
cloc_data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[122.7709383, 116.7460125, 104.09373615],
    std=[68.5005327, 66.6321579, 70.32316305],
    bgr_to_rgb=True,
    pad_size_divisor=32)

cloc_vit = dict(
    type='ClocViT',
    img_size=224,  # the pretraining grid; interpolated to each input at run time
    patch_size=16,
    width=768,
    layers=12,
    heads=12,
    embed_dim=512,
    drop_path_rate=0.1,
    patch_token_norm='none',  # as in pretraining (the Prompter's input)
    grad_checkpointing=True,
    out_strides=(8, 16, 32),  # DETR-style necks; (4, 8, 16, 32) for FPN (ViTDet)
    init_cfg=dict(type='Pretrained', checkpoint=cloc_checkpoint, prefix='backbone.'))
cloc_vit_channels = [384, 768, 768]

cloc_text_model = dict(
    type='ClocTextModel',
    tokenizer_path=cloc_tokenizer,
    # configs/_base_/models/cloc_vit-b16.py's text tower.
    text_encoder=dict(
        type='TextTransformer', vocab_size=49408, context_length=77, width=512, layers=12,
        heads=8, embed_dim=512),
    max_tokens=256,
    pad_to_max=False,
    use_sub_sentence_represent=True,
    special_tokens_list=['.', '?'],
    init_cfg=dict(type='Pretrained', checkpoint=cloc_checkpoint, prefix='language_model.'))

# Layer-wise LR decay over the ViT (ViTDet: 0.7 for B); the text tower trains at 0.1x.
cloc_optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    constructor='ClocLayerDecayOptimWrapperConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    paramwise_cfg=dict(
        layer_decay_rate=0.7,
        custom_keys={
            'backbone.vit.positional_embedding': dict(decay_mult=0.),
            'backbone.vit.class_embedding': dict(decay_mult=0.),
            'language_model': dict(lr_mult=0.1),
        }))

# mmdet's grounding fine-tune pipeline (mm_grounding_dino/refcoco) with the CLOC tokenizer
# in RandomSamplingNegPos (it only loads it; referring expressions need no negatives).
cloc_grounding_train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.0),  # "left" / "right" in the expressions
    dict(
        type='RandomChoice',
        transforms=[
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333),
                            (608, 1333), (640, 1333), (672, 1333), (704, 1333),
                            (736, 1333), (768, 1333), (800, 1333)],
                    keep_ratio=True)
            ],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(400, 4200), (500, 4200), (600, 4200)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(384, 600),
                    allow_negative_crop=True),
                dict(
                    type='RandomChoiceResize',
                    scales=[(480, 1333), (512, 1333), (544, 1333), (576, 1333),
                            (608, 1333), (640, 1333), (672, 1333), (704, 1333),
                            (736, 1333), (768, 1333), (800, 1333)],
                    keep_ratio=True)
            ]
        ]),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(
        type='RandomSamplingNegPos',
        tokenizer_name=cloc_tokenizer,
        num_sample_negative=85,
        max_tokens=256),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor', 'flip',
                   'flip_direction', 'text', 'custom_entities', 'tokens_positive',
                   'dataset_mode'))
]
