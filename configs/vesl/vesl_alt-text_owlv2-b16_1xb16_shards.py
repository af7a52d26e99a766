# VESL on web shards that already have captions (img2dataset's alt-text in KEY.json /
# KEY.txt): no captioner model; images without a caption are re-captioned by BLIP.
_base_ = ['../_base_/vesl/vesl_runtime.py']

captioner = dict(
    type='ExistingCaptions',
    key='caption',
    fallback=dict(type='HFCaptioner',
                  model_path='checkpoints/vesl/blip-image-captioning-large'))
phrase_extractor = dict(
    type='NLTKPhraseExtractor',
    tagger_path='checkpoints/vesl/nltk_data/taggers/averaged_perceptron_tagger_eng',
    max_phrases=20)
detector = dict(
    type='OWLv2Detector',
    model_path='checkpoints/vesl/owlv2-base-patch16-ensemble')
batch_size = 16
output = dict(tar=True)
