import type { DatasetName } from './env';

/**
 * Where each dataset is downloaded from when no location is given (the mirrors
 * torchvision uses; CIFAR-10's binary version as its authors publish it, a
 * .tar.gz the trainer unpacks into its cache).
 */
export const DATASET_MIRRORS: Readonly<Partial<Record<DatasetName, string>>> = {
  mnist: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'fashion-mnist': 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
  cifar10: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz',
};
