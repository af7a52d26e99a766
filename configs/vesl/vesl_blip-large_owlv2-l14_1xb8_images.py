# VESL as in the CLOC paper: re-caption every image, NLTK noun phrases (at most 20
# queries), OWLv2 L/14 boxes above 0.1. Checkpoints are read from checkpoints/vesl/
# (see docs/vesl.md for the download commands); nothing is fetched at run time.
_base_ = ['../_base_/vesl/vesl_runtime.py']

captioner = dict(
    type='HFCaptioner',
    model_path='checkpoints/vesl/blip-image-captioning-large',
    prompt=None,          # BLIP conditional captioning prefix, e.g. 'a picture of'
    max_new_tokens=40,
    num_beams=3)
phrase_extractor = dict(
    type='NLTKPhraseExtractor',
    tagger_path='checkpoints/vesl/nltk_data/taggers/averaged_perceptron_tagger_eng',
    max_phrases=20)
detector = dict(
    type='OWLv2Detector',
    model_path='checkpoints/vesl/owlv2-large-patch14-ensemble',
    query_template='{}')
dtype = 'bfloat16'
