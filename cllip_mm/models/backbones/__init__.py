from .vision_transformer import VisionTransformer, ViTOutput

__all__ = ['VisionTransformer', 'ViTOutput']
