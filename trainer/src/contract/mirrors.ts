import type { DatasetName } from './env';

/**
 * Where each dataset is downloaded from when no location is given (the mirrors
 * torchvision uses). CIFAR-10 is published only as a tarball: extract it into a
 * bucket or volume and give its folder.
 */
export const DATASET_MIRRORS: Readonly<Record<DatasetName, string | undefined>> = {
  mnist: 'https://ossci-datasets.s3.amazonaws.com/mnist/',
  'fashion-mnist': 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
  cifar10: undefined,
};
