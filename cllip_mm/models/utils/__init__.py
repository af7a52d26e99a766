from .class_embeddings import ClassEmbeddingCacheMixin, ensemble_class_embeddings

__all__ = ['ClassEmbeddingCacheMixin', 'ensemble_class_embeddings']
