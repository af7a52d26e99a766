# Copyright (c) cllip_mm contributors. All rights reserved.
"""Phrase extractors: caption -> noun phrases (VESL stage 2).

``extractor(captions) -> list[ExtractedPhrases]``; each :class:`Phrase` keeps the
character span it came from, so that ODVG's ``tokens_positive`` is exact.
"""
import os.path as osp
import pickle
from collections import Counter
from typing import List, NamedTuple, Optional, Sequence, Tuple

from cllip_mm.registry import VESL_STAGES

#: Noun-phrase chunk grammar over Penn Treebank tags: optional determiner /
#: possessive / number, modifiers (adjectives, participles, nouns), head noun(s).
DEFAULT_GRAMMAR = r'NP: {<DT|PRP\$|CD>*<JJ.*|VBN|VBG|NN.*|POS>*<NN.*>+}'

#: Words that say nothing about a region ("a photo of ..."), dropped as phrases.
DEFAULT_EXCLUDE = ('image', 'picture', 'photo', 'photograph', 'view', 'close up', 'closeup',
                   'front', 'top', 'side', 'left', 'right', 'middle', 'background', 'foreground')


class Phrase(NamedTuple):
    """A noun phrase: its query ``text`` and the ``span`` (start, end) it comes from
    in the caption (``caption[start:end]``, before normalisation)."""
    text: str
    span: Tuple[int, int]


class ExtractedPhrases(NamedTuple):
    """The phrases of one caption and how many candidates each rule dropped."""
    phrases: List[Phrase]
    dropped: Counter


def authorize_nltk_dir(path: str) -> None:
    """Let NLTK (>= 3.9.3 sandboxes model files to ``nltk.data.path``) read / write
    the model directory ``path`` that the config names explicitly."""
    import nltk
    real = osp.realpath(path)
    if real not in nltk.data.path:
        nltk.data.path.append(real)


def load_tagger(path: str, lang: str = 'eng'):
    """An NLTK POS tagger from a local path.

    - a directory: NLTK's averaged perceptron in its JSON format (what
      ``PerceptronTagger.save_to_json`` writes and what ``nltk_data/taggers/
      averaged_perceptron_tagger_eng/`` holds);
    - a ``.pickle`` / ``.pkl`` file: any pickled NLTK tagger (e.g. a trained
      ``UnigramTagger`` / ``BigramTagger`` chain). Only load pickles you made.
    """
    if osp.isdir(path):
        from nltk.tag.perceptron import PerceptronTagger
        authorize_nltk_dir(path)
        return PerceptronTagger(lang=lang, loc=osp.realpath(path))
    if osp.isfile(path) and path.endswith(('.pickle', '.pkl')):
        with open(path, 'rb') as f:
            tagger = pickle.load(f)
        if not hasattr(tagger, 'tag'):
            raise TypeError(f'{path}: expected a pickled NLTK tagger, got {type(tagger)}')
        return tagger
    raise FileNotFoundError(
        f'tagger_path {path!r} is neither a perceptron tagger directory nor a .pickle file '
        '(see docs/vesl.md for where to get NLTK\'s English tagger)')


@VESL_STAGES.register_module()
class NLTKPhraseExtractor:
    """Noun phrases by NLTK regexp chunking over a POS tagger, as the CLOC paper.

    Tokenises with NLTK's Treebank tokenizer (no data files), tags with the tagger at
    ``tagger_path`` (:func:`load_tagger`), chunks with ``nltk.RegexpParser(grammar)``
    and turns each ``NP`` chunk into a query: leading determiners / possessives
    (``strip_tags``) removed, lower-cased, white space collapsed. Phrases are
    de-duplicated (first occurrence kept), excluded words dropped and at most
    ``max_phrases`` kept, in caption order.

    Args:
        tagger_path (str): See :func:`load_tagger`.
        lang (str): Language code of a perceptron tagger directory.
        grammar (str): ``RegexpParser`` grammar; its ``NP`` chunks are the phrases.
        strip_tags (tuple[str]): Tags removed from the start of a chunk.
        lowercase (bool): Lower-case the phrase text.
        exclude (tuple[str]): Phrases (after normalisation) that are dropped.
        min_chars (int): Shorter phrases are dropped.
        max_phrases (int): Detector queries per image (the paper: 20).
    """

    name = 'phrases'

    def __init__(self,
                 tagger_path: str,
                 lang: str = 'eng',
                 grammar: str = DEFAULT_GRAMMAR,
                 strip_tags: Sequence[str] = ('DT', 'PRP$', 'POS'),
                 lowercase: bool = True,
                 exclude: Sequence[str] = DEFAULT_EXCLUDE,
                 min_chars: int = 2,
                 max_phrases: int = 20,
                 device: Optional[str] = None,
                 dtype: Optional[str] = None) -> None:
        import nltk
        from nltk.tokenize import TreebankWordTokenizer
        if max_phrases < 1:
            raise ValueError(f'max_phrases must be >= 1, got {max_phrases}')
        self.tagger = load_tagger(tagger_path, lang)
        self.parser = nltk.RegexpParser(grammar)
        self.tokenizer = TreebankWordTokenizer()
        self.strip_tags = set(strip_tags)
        self.lowercase = lowercase
        self.exclude = {e.lower() for e in exclude}
        self.min_chars = min_chars
        self.max_phrases = max_phrases

    def __call__(self, captions: Sequence[str]) -> List[ExtractedPhrases]:
        return [self.extract(c) for c in captions]

    def chunks(self, caption: str) -> List[Tuple[int, int]]:
        """Character spans of the ``NP`` chunks of ``caption`` (leading
        ``strip_tags`` tokens removed), in caption order."""
        from nltk.tree import Tree
        spans = list(self.tokenizer.span_tokenize(caption))
        if not spans:
            return []
        tags = [tag for _, tag in self.tagger.tag([caption[s:e] for s, e in spans])]
        # Leaves carry the token index, so chunks map back to character spans.
        tree = self.parser.parse(list(zip(range(len(spans)), tags)))
        out = []
        for node in tree:
            if not isinstance(node, Tree) or node.label() != 'NP':
                continue
            leaves = list(node.leaves())
            while leaves and leaves[0][1] in self.strip_tags:
                leaves.pop(0)
            if leaves:
                out.append((spans[leaves[0][0]][0], spans[leaves[-1][0]][1]))
        return out

    def extract(self, caption: str) -> ExtractedPhrases:
        dropped, seen, phrases = Counter(), set(), []
        for start, end in self.chunks(caption):
            text = ' '.join(caption[start:end].split())
            text = text.lower() if self.lowercase else text
            if len(text) < self.min_chars or text.lower() in self.exclude:
                dropped['excluded'] += 1
            elif text in seen:
                dropped['duplicate'] += 1
            elif len(phrases) >= self.max_phrases:
                dropped['over_max_phrases'] += 1
            else:
                seen.add(text)
                phrases.append(Phrase(text, (start, end)))
        return ExtractedPhrases(phrases, dropped)
