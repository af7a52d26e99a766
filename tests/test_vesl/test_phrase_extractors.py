"""NLTKPhraseExtractor with a perceptron tagger trained on a few sentences."""
import pickle

import pytest

from cllip_mm.registry import VESL_STAGES


@pytest.fixture(scope='module')
def extractor(vesl_models):
    return VESL_STAGES.build(dict(type='NLTKPhraseExtractor', tagger_path=vesl_models['tagger']))


def test_noun_phrases_with_spans_dedup_and_determiners(extractor):
    caption = 'A red dog sits on the green grass near a red  dog and his old car.'
    out = extractor.extract(caption)
    texts = [p.text for p in out.phrases]
    assert texts == ['red dog', 'green grass', 'old car']
    for phrase in out.phrases:
        start, end = phrase.span
        assert ' '.join(caption[start:end].lower().split()) == phrase.text
    assert out.dropped['duplicate'] == 1


def test_max_phrases_and_exclude(vesl_models):
    extractor = VESL_STAGES.build(dict(
        type='NLTKPhraseExtractor', tagger_path=vesl_models['tagger'], max_phrases=1,
        exclude=('green grass', )))
    out = extractor.extract('a red dog on the green grass by the river')
    assert [p.text for p in out.phrases] == ['red dog']
    assert out.dropped == {'excluded': 1, 'over_max_phrases': 1}
    assert extractor([''])[0].phrases == []


def test_pickled_unigram_tagger(tmp_path):
    from nltk.tag import UnigramTagger
    tagger = UnigramTagger([[('a', 'DT'), ('big', 'JJ'), ('boat', 'NN'), ('floats', 'VBZ')]])
    path = tmp_path / 'tagger.pickle'
    path.write_bytes(pickle.dumps(tagger))
    extractor = VESL_STAGES.build(dict(type='NLTKPhraseExtractor', tagger_path=str(path)))
    assert [p.text for p in extractor.extract('a big boat floats').phrases] == ['big boat']


def test_missing_tagger_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='tagger_path'):
        VESL_STAGES.build(dict(type='NLTKPhraseExtractor', tagger_path=str(tmp_path / 'nope')))
